/* SPDX-License-Identifier: MIT */
#pragma once

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Field-by-field validation of JSON objects received from untrusted peers:
 * every field named, typed and range-checked before use; unknown fields are
 * refused, so that a typo in a client is an error, not a silently ignored
 * option. A JSON null counts as absent. */

typedef enum JsonKind {
        JSON_KIND_STRING, /* no NUL bytes inside */
        JSON_KIND_UINT,   /* integer >= 0 */
        JSON_KIND_INT,
        JSON_KIND_BOOL,
        JSON_KIND_OBJECT,
        JSON_KIND_ARRAY,
        JSON_KIND_ANY,
} JsonKind;

typedef struct JsonField {
        const char *name;
        JsonKind kind;
        bool required;
} JsonField;

typedef struct JsonError {
        char field[64];
        char reason[256];
} JsonError;

void json_error_set(JsonError *e, const char *field, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* obj may be NULL (no parameters): then only "required" fields matter. */
int json_validate(json_object *obj, const JsonField *fields, size_t n_fields, JsonError *err);

/* Lookups for fields json_validate() has checked; NULL / default when absent. */
json_object *json_get(json_object *obj, const char *name);
const char *json_get_str(json_object *obj, const char *name);
uint64_t json_get_uint(json_object *obj, const char *name, uint64_t def);
bool json_get_bool(json_object *obj, const char *name, bool def);

/* Serialize compactly, without escaping '/'. The string belongs to obj. */
const char *json_compact(json_object *obj, size_t *len);

/* Parse exactly len bytes as one JSON value of at most `depth` nesting;
 * trailing bytes are an error. NULL on failure with *why set. */
json_object *json_parse_strict(const char *text, size_t len, int depth, const char **why);

/* json_object_new_* that cannot be mistaken for success: NULL means ENOMEM. */
int json_add(json_object *obj, const char *key, json_object *val);
int json_add_str(json_object *obj, const char *key, const char *s);
int json_add_u64(json_object *obj, const char *key, uint64_t v);
