/* config/settings.c: being written. */
#include "config/config.h"
