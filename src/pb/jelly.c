/* pb/jelly.c: being written. */
#include "pb/pb.h"
