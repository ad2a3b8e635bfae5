/* config/lua.c: being written. */
#include "config/config.h"
