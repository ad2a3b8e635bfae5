/* config/bbm.c: being written. */
#include "config/config.h"
