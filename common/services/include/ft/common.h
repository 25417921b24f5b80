/*
 * ft/common.h - the public face of common/: everything two or more ftplat
 * processes share. Include this, or just the part you need.
 */
#ifndef FT_COMMON_H
#define FT_COMMON_H

#include "ft/base.h"
#include "ft/buf.h"
#include "ft/config.h"
#include "ft/crypto.h"
#include "ft/err.h"
#include "ft/id.h"
#include "ft/json.h"
#include "ft/log.h"
#include "ft/pg.h"
#include "ft/redis.h"
#include "ft/clock.h"

#endif
