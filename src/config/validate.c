/* config/validate.c: being written. */
#include "config/config.h"
