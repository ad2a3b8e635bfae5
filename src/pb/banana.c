/* pb/banana.c: being written. */
#include "pb/pb.h"
