/* SPDX-License-Identifier: MIT */
#include "schema.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "varlink.h"

#define FIELD_PTR(obj, f) ((char *) (obj) + (f)->offset)
#define FIELD_CPTR(obj, f) ((const char *) (obj) + (f)->offset)

static json_object *field_to_json(const SchemaField *f, const void *obj) {
        const char *p = FIELD_CPTR(obj, f);
        const char *why;
        char *s;
        int e;

        switch (f->type) {
        case SCHEMA_STRING:
                memcpy(&s, p, sizeof(s));
                return json_object_new_string(s);
        case SCHEMA_U32:
                return json_object_new_int64(*(const uint32_t *) (const void *) p);
        case SCHEMA_U64:
                /* Varlink's int is int64; nothing of ours comes near 2^63. */
                return json_object_new_int64((int64_t) *(const uint64_t *) (const void *) p);
        case SCHEMA_USEC_SEC:
                return json_object_new_int64((int64_t) (*(const uint64_t *) (const void *) p / 1000000u));
        case SCHEMA_ENUM:
                e = *(const int *) (const void *) p;
                return e >= 0 && e < f->n_names ? json_object_new_string(f->names[e]) : NULL;
        case SCHEMA_OBJECT:
                memcpy(&s, p, sizeof(s));
                return json_parse_strict(s, strlen(s), VARLINK_JSON_DEPTH, &why);
        }
        return NULL;
}

/* A number the reader would refuse is not written: a job.json that its
 * own daemon cannot load would lose the job at the next start. */
static bool number_in_range(const SchemaField *f, const void *obj) {
        const void *p = FIELD_CPTR(obj, f);
        uint64_t n;

        switch (f->type) {
        case SCHEMA_U32:
                n = *(const uint32_t *) p;
                break;
        case SCHEMA_U64:
                n = *(const uint64_t *) p;
                break;
        case SCHEMA_USEC_SEC:
                n = *(const uint64_t *) p / 1000000u;
                break;
        default:
                return true;
        }
        return n >= f->min && n <= f->max;
}

int schema_to_json(const Schema *s, const void *obj, unsigned where, json_object *out) {
        for (size_t i = 0; i < s->n_fields; i++) {
                const SchemaField *f = &s->fields[i];
                char *str;
                int r;

                if (!(f->flags & where))
                        continue;
                if ((where & SCHEMA_PERSIST) && !number_in_range(f, obj))
                        return -ERANGE;
                if (f->type == SCHEMA_STRING || f->type == SCHEMA_OBJECT) {
                        memcpy(&str, FIELD_CPTR(obj, f), sizeof(str));
                        if (!str)
                                continue;
                }
                r = json_add(out, f->name, field_to_json(f, obj));
                if (r < 0)
                        return r;
        }
        return 0;
}

static int read_number(const SchemaField *f, json_object *v, void *p, JsonError *err) {
        uint64_t n;

        if (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) < 0) {
                json_error_set(err, f->name, "must be a non-negative integer");
                return -EINVAL;
        }
        n = json_object_get_uint64(v);
        if (n < f->min || n > f->max) {
                json_error_set(err, f->name, "must be between %llu and %llu", (unsigned long long) f->min,
                               (unsigned long long) f->max);
                return -EINVAL;
        }
        if (f->type == SCHEMA_U32)
                *(uint32_t *) p = (uint32_t) n;
        else if (f->type == SCHEMA_USEC_SEC)
                *(uint64_t *) p = n * 1000000u;
        else
                *(uint64_t *) p = n;
        return 0;
}

static int replace_string(void *p, const char *value, size_t len) {
        char *old, *copy = strndup(value, len);

        if (!copy)
                return -ENOMEM;
        memcpy(&old, p, sizeof(old));
        free(old);
        memcpy(p, &copy, sizeof(copy));
        return 0;
}

static int read_field(const SchemaField *f, json_object *v, void *obj, JsonError *err) {
        void *p = FIELD_PTR(obj, f);
        const char *str;
        size_t len;

        switch (f->type) {
        case SCHEMA_STRING:
                if (!json_object_is_type(v, json_type_string) ||
                    strlen(json_object_get_string(v)) != (size_t) json_object_get_string_len(v))
                        break;
                return replace_string(p, json_object_get_string(v), (size_t) json_object_get_string_len(v));
        case SCHEMA_OBJECT:
                if (!json_object_is_type(v, json_type_object))
                        break;
                str = json_compact(v, &len);
                return str ? replace_string(p, str, len) : -ENOMEM;
        case SCHEMA_ENUM:
                str = json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
                for (int k = 0; str && k < f->n_names; k++)
                        if (streq(str, f->names[k])) {
                                *(int *) p = k;
                                return 0;
                        }
                break;
        default:
                return read_number(f, v, p, err);
        }
        json_error_set(err, f->name, "has the wrong type or value");
        return -EINVAL;
}

int schema_from_json(const Schema *s, void *obj, unsigned where, json_object *in, JsonError *err) {
        for (size_t i = 0; i < s->n_fields; i++) {
                const SchemaField *f = &s->fields[i];
                json_object *v;
                int r;

                if (!(f->flags & where))
                        continue;
                v = json_get(in, f->name);
                if (!v) {
                        if (f->flags & SCHEMA_OPTIONAL)
                                continue;
                        json_error_set(err, f->name, "missing");
                        return -EINVAL;
                }
                r = read_field(f, v, obj, err);
                if (r < 0)
                        return r;
        }
        return 0;
}

static bool schema_has(const Schema *s, const char *key, unsigned where) {
        for (size_t i = 0; i < s->n_fields; i++)
                if ((s->fields[i].flags & where) && streq(s->fields[i].name, key))
                        return true;
        return false;
}

int schema_check_keys(json_object *in, const Schema *const *schemas, size_t n, unsigned where,
                      const char *const *extra, JsonError *err) {
        if (!in || !json_object_is_type(in, json_type_object)) {
                json_error_set(err, "", "must be an object");
                return -EINVAL;
        }
        json_object_object_foreach(in, key, val) {
                bool known = false;

                (void) val;
                for (size_t k = 0; k < n && !known; k++)
                        known = schema_has(schemas[k], key, where);
                for (size_t k = 0; extra && extra[k] && !known; k++)
                        known = streq(extra[k], key);
                if (!known) {
                        json_error_set(err, key, "unknown field");
                        return -EINVAL;
                }
        }
        return 0;
}

void schema_done(const Schema *s, void *obj) {
        for (size_t i = 0; i < s->n_fields; i++) {
                const SchemaField *f = &s->fields[i];
                char *str, *none = NULL;

                if (f->type != SCHEMA_STRING && f->type != SCHEMA_OBJECT)
                        continue;
                memcpy(&str, FIELD_PTR(obj, f), sizeof(str));
                free(str);
                memcpy(FIELD_PTR(obj, f), &none, sizeof(none));
        }
}

const char *schema_enum_name(const Schema *s, const char *name, int value) {
        for (size_t i = 0; i < s->n_fields; i++) {
                const SchemaField *f = &s->fields[i];
                if (f->type == SCHEMA_ENUM && streq(f->name, name))
                        return value >= 0 && value < f->n_names ? f->names[value] : "invalid";
        }
        return "invalid";
}
