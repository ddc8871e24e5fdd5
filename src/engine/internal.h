/*
 * src/engine/internal.h - former name of src/engine/handle.h, kept only for
 * code outside the engine that still includes it (src/native/protocol.c,
 * for kj_store_fail). New code includes "engine/handle.h".
 */
#ifndef KJ_INTERNAL_H
#define KJ_INTERNAL_H

#include "handle.h"

#endif
