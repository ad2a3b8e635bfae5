/* pb/login.c: being written. */
#include "pb/pb.h"
