/* SPDX-License-Identifier: MIT */
#include "json-util.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "macro.h"

void json_error_set(JsonError *e, const char *field, const char *fmt, ...) {
        va_list ap;

        if (!e)
                return;
        (void) snprintf(e->field, sizeof(e->field), "%s", field ? field : "");
        va_start(ap, fmt);
        (void) vsnprintf(e->reason, sizeof(e->reason), fmt, ap);
        va_end(ap);
}

static const char *kind_name(JsonKind k) {
        switch (k) {
        case JSON_KIND_STRING:
                return "a string";
        case JSON_KIND_UINT:
                return "a non-negative integer";
        case JSON_KIND_INT:
                return "an integer";
        case JSON_KIND_BOOL:
                return "a boolean";
        case JSON_KIND_OBJECT:
                return "an object";
        case JSON_KIND_ARRAY:
                return "an array";
        default:
                return "a value";
        }
}

static bool kind_matches(json_object *v, JsonKind k) {
        switch (k) {
        case JSON_KIND_STRING:
                return json_object_is_type(v, json_type_string) &&
                       strlen(json_object_get_string(v)) == (size_t) json_object_get_string_len(v);
        case JSON_KIND_UINT:
                /* Varlink's int is int64. json-c keeps integers above
                 * INT64_MAX as uint64 and saturates past 2^64-1: neither is
                 * one, and would come back in a reply as a negative. */
                return json_object_is_type(v, json_type_int) && json_object_get_int64(v) >= 0 &&
                       json_object_get_uint64(v) <= (uint64_t) INT64_MAX;
        case JSON_KIND_INT:
                return json_object_is_type(v, json_type_int);
        case JSON_KIND_BOOL:
                return json_object_is_type(v, json_type_boolean);
        case JSON_KIND_OBJECT:
                return json_object_is_type(v, json_type_object);
        case JSON_KIND_ARRAY:
                return json_object_is_type(v, json_type_array);
        default:
                return true;
        }
}

int json_validate(json_object *obj, const JsonField *fields, size_t n_fields, JsonError *err) {
        if (obj && !json_object_is_type(obj, json_type_object)) {
                json_error_set(err, "parameters", "must be an object");
                return -EINVAL;
        }
        if (obj) {
                json_object_object_foreach(obj, key, val) {
                        size_t i;
                        (void) val;
                        for (i = 0; i < n_fields; i++)
                                if (streq(fields[i].name, key))
                                        break;
                        if (i == n_fields) {
                                json_error_set(err, key, "unknown field");
                                return -EINVAL;
                        }
                }
        }
        for (size_t i = 0; i < n_fields; i++) {
                json_object *v = json_get(obj, fields[i].name);
                if (!v) {
                        if (fields[i].required) {
                                json_error_set(err, fields[i].name, "missing");
                                return -EINVAL;
                        }
                        continue;
                }
                if (!kind_matches(v, fields[i].kind)) {
                        if (fields[i].kind == JSON_KIND_STRING && json_object_is_type(v, json_type_string))
                                json_error_set(err, fields[i].name, "must not contain NUL bytes");
                        else
                                json_error_set(err, fields[i].name, "must be %s", kind_name(fields[i].kind));
                        return -EINVAL;
                }
        }
        return 0;
}

json_object *json_get(json_object *obj, const char *name) {
        json_object *v = NULL;

        if (!obj || !json_object_is_type(obj, json_type_object))
                return NULL;
        if (!json_object_object_get_ex(obj, name, &v))
                return NULL;
        return v; /* NULL for a JSON null */
}

const char *json_get_str(json_object *obj, const char *name) {
        json_object *v = json_get(obj, name);
        return v && json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

uint64_t json_get_uint(json_object *obj, const char *name, uint64_t def) {
        json_object *v = json_get(obj, name);

        if (!v || !json_object_is_type(v, json_type_int))
                return def;
        if (json_object_get_int64(v) < 0)
                return def;
        return json_object_get_uint64(v);
}

bool json_get_bool(json_object *obj, const char *name, bool def) {
        json_object *v = json_get(obj, name);
        return v && json_object_is_type(v, json_type_boolean) ? json_object_get_boolean(v) : def;
}

const char *json_compact(json_object *obj, size_t *len) {
        const char *s = json_object_to_json_string_length(
                obj, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, len);
        return s;
}

/* json-c's strict mode still takes single-quoted strings; refuse a quote
 * outside double-quoted strings before json-c sees the text. (A NUL ends
 * json-c's input early, which the caller reports as trailing data.) */
static bool json_text_plausible(const char *p, size_t len) {
        bool in_string = false;

        for (size_t i = 0; i < len; i++) {
                char ch = p[i];
                if (in_string) {
                        if (ch == '\\')
                                i++;
                        else if (ch == '"')
                                in_string = false;
                        continue;
                }
                if (ch == '"')
                        in_string = true;
                else if (ch == '\'')
                        return false;
        }
        return true;
}

/* json-c also reads NaN and Infinity as numbers; JSON has neither. */
static bool json_all_finite(json_object *o, int depth) {
        if (depth <= 0)
                return false;
        if (json_object_is_type(o, json_type_double))
                return isfinite(json_object_get_double(o));
        if (json_object_is_type(o, json_type_object)) {
                json_object_object_foreach(o, k, v) {
                        (void) k;
                        if (v && !json_all_finite(v, depth - 1))
                                return false;
                }
        } else if (json_object_is_type(o, json_type_array)) {
                for (size_t i = 0; i < json_object_array_length(o); i++) {
                        json_object *v = json_object_array_get_idx(o, i);
                        if (v && !json_all_finite(v, depth - 1))
                                return false;
                }
        }
        return true;
}

json_object *json_parse_strict(const char *text, size_t len, int depth, const char **why) {
        struct json_tokener *tok;
        json_object *obj;
        enum json_tokener_error jerr;

        *why = NULL;
        if (len > INT32_MAX) {
                *why = "message too large";
                return NULL;
        }
        if (!json_text_plausible(text, len)) {
                *why = "not JSON (a single-quoted string)";
                return NULL;
        }
        tok = json_tokener_new_ex(depth);
        if (!tok) {
                *why = "out of memory";
                return NULL;
        }
        json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
        obj = json_tokener_parse_ex(tok, text, (int) len);
        jerr = json_tokener_get_error(tok);
        if (jerr == json_tokener_continue && (size_t) json_tokener_get_parse_end(tok) == len) {
                /* A bare number or literal ends only at the end of input:
                 * say so with the terminating NUL json-c waits for. */
                obj = json_tokener_parse_ex(tok, "", 1);
                jerr = json_tokener_get_error(tok);
                if (jerr != json_tokener_success) {
                        /* The input ended inside a value. */
                        json_object_put(obj);
                        obj = NULL;
                        *why = "truncated JSON";
                }
        } else if (jerr == json_tokener_continue) {
                json_object_put(obj);
                obj = NULL;
                *why = "truncated JSON";
        } else if (jerr != json_tokener_success) {
                *why = json_tokener_error_desc(jerr);
                obj = NULL;
        } else if ((size_t) json_tokener_get_parse_end(tok) != len) {
                json_object_put(obj);
                obj = NULL;
                *why = "trailing data after JSON value";
        }
        json_tokener_free(tok);
        if (!obj && jerr == json_tokener_success && !*why)
                *why = "a bare null"; /* valid JSON, but never what we want */
        if (obj && !json_all_finite(obj, depth + 1)) {
                json_object_put(obj);
                obj = NULL;
                *why = "not JSON (NaN or infinity)";
        }
        return obj;
}

int json_add(json_object *obj, const char *key, json_object *val) {
        if (!val)
                return -ENOMEM;
        if (json_object_object_add(obj, key, val) < 0) {
                json_object_put(val);
                return -ENOMEM;
        }
        return 0;
}

int json_add_str(json_object *obj, const char *key, const char *s) {
        return json_add(obj, key, s ? json_object_new_string(s) : NULL);
}

int json_add_u64(json_object *obj, const char *key, uint64_t v) {
        /* Varlink's int is int64; our counters never come near 2^63. */
        return json_add(obj, key, json_object_new_int64((int64_t) v));
}
