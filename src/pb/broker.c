/* pb/broker.c: being written. */
#include "pb/pb.h"
