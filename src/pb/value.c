/* pb/value.c: being written. */
#include "pb/pb.h"
