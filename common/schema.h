/* SPDX-License-Identifier: MIT */
#pragma once

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "json-util.h"

/* A struct described once, as a table of fields, and written to or read
 * from JSON by that table wherever it travels: a job's spec goes to
 * job.json, to the runner's start message and into the Job of the Varlink
 * interface, and comes back from the first two, all through the one table
 * in jobspec.c. Each field says where it goes (SCHEMA_PERSIST, ...); the
 * reader checks type and bounds of every field before it is stored. */

typedef enum SchemaType {
        SCHEMA_STRING,   /* char *, owned; NUL bytes refused */
        SCHEMA_U32,      /* uint32_t */
        SCHEMA_U64,      /* uint64_t */
        SCHEMA_ENUM,     /* int, spelled as one of names[] */
        SCHEMA_OBJECT,   /* char *, owned: a JSON object as compact text */
        SCHEMA_USEC_SEC, /* uint64_t microseconds, whole seconds in JSON */
} SchemaType;

enum {
        SCHEMA_PERSIST = 1 << 0, /* in the state file */
        SCHEMA_RUNNER = 1 << 1,  /* in the runner's start message */
        SCHEMA_SHOW = 1 << 2,    /* in what clients see */
        /* Flags, not destinations: */
        SCHEMA_OPTIONAL = 1 << 8, /* may be absent when read: the value is kept */
};

typedef struct SchemaField {
        const char *name;
        SchemaType type;
        size_t offset;
        unsigned flags;
        uint64_t min, max; /* numbers, inclusive; for SCHEMA_USEC_SEC in seconds */
        const char *const *names; /* SCHEMA_ENUM */
        int n_names;
} SchemaField;

typedef struct Schema {
        const SchemaField *fields;
        size_t n_fields;
} Schema;

/* Adds obj's fields marked `where` to out. A NULL string is left out.
 * For SCHEMA_PERSIST, a number out of its bounds is -ERANGE: nothing is
 * stored that the reader would refuse. */
int schema_to_json(const Schema *s, const void *obj, unsigned where, json_object *out);
/* Reads obj's fields marked `where` from in; every present field is
 * type- and bounds-checked (-EINVAL with *err naming it), strings are
 * copied (-ENOMEM). On failure obj may hold some new values: free it with
 * schema_done(). Keys of `in` that no field names are not looked at: see
 * schema_check_keys(). */
int schema_from_json(const Schema *s, void *obj, unsigned where, json_object *in, JsonError *err);
/* -EINVAL unless every key of `in` is a field marked `where` of one of the
 * n schemas, or one of the NULL-terminated extra names. */
int schema_check_keys(json_object *in, const Schema *const *schemas, size_t n, unsigned where,
                      const char *const *extra, JsonError *err);
/* Frees obj's strings and zeroes them. */
void schema_done(const Schema *s, void *obj);
/* The spelling of an enum value of field `name`, or "invalid". */
const char *schema_enum_name(const Schema *s, const char *name, int value);
