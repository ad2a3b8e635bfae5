/* config/sample.c: being written. */
#include "config/config.h"
