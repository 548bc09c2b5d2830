/* SPDX-License-Identifier: MIT */
#include <check.h>
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "host.h"
#include "module.h"
#include "runner.h"
#include "test-util.h"

/* The test modules' paths come from meson (tests/modules). */
static const char *module_path(const char *name) {
        char var[64];
        const char *p;

        snprintf(var, sizeof(var), "TEST_MODULE_%s", name);
        p = getenv(var);
        ck_assert_msg(p && p[0] == '/', "$%s is not set to an absolute path", var);
        return p;
}

static void assert_contains(const char *haystack, const char *needle) {
        ck_assert_msg(strstr(haystack, needle), "\"%s\" does not mention \"%s\"", haystack, needle);
}

/* --- loading --------------------------------------------------------------- */

START_TEST(test_load_good) {
        Module m;
        char err[512] = "untouched";

        ck_assert_int_eq(module_load(&m, module_path("good"), err, sizeof(err)), 0);
        ck_assert_ptr_nonnull(m.dl);
        ck_assert_ptr_nonnull(m.def);
        ck_assert_uint_eq(m.def->abi_version, MPLOCK_MODULE_ABI_VERSION);
        ck_assert_str_eq(m.def->name, "good");
        ck_assert_ptr_nonnull(m.def->init);
        ck_assert_ptr_nonnull(m.def->process);
        ck_assert_ptr_null(m.def->fini);
        ck_assert_ptr_nonnull(m.def->save);
        module_unload(&m);
        ck_assert_ptr_null(m.dl);
        ck_assert_ptr_null(m.def);
        /* Unloading twice is harmless. */
        module_unload(&m);
}
END_TEST

START_TEST(test_good_callbacks) {
        /* The module runs against the real host services. */
        static const char *const texts[] = { "a", "!boom", "", "long" };
        mplock_item items[ELEMENTSOF(texts)];
        mplock_entry entries[2] = {};
        ResultSlots rs = {};
        mplock_results out = { .api = &host_api, .host = &rs };
        Module m;
        Host h;
        char err[512];
        void *state = NULL;

        ck_assert_int_eq(module_load(&m, module_path("good"), err, sizeof(err)), 0);
        ck_assert_int_eq(host_init(&h, "{\"prefix\":\"p:\",\"fail_code\":-7}", "/out", 9, 2, 1), 0);
        ck_assert_int_eq(m.def->init(&h.ctx, &state), 0);
        ck_assert_ptr_nonnull(state);

        for (size_t i = 0; i < ELEMENTSOF(texts); i++)
                items[i] = (mplock_item){ .data = texts[i], .len = strlen(texts[i]), .index = 100 + i };
        ck_assert_int_eq(result_slots_reset(&rs, ELEMENTSOF(items)), 0);
        ck_assert_int_eq(m.def->process(&h.ctx, state, items, ELEMENTSOF(items), &out), 0);

        ck_assert(rs.slots[0].set);
        ck_assert_int_eq(rs.slots[0].status, 0);
        ck_assert_uint_eq(rs.slots[0].len, 3);
        ck_assert_mem_eq(rs.slots[0].data, "p:a", 3);
        ck_assert(rs.slots[1].set);
        ck_assert_int_eq(rs.slots[1].status, -7);
        ck_assert_uint_eq(rs.slots[1].len, 4);
        ck_assert_mem_eq(rs.slots[1].data, "boom", 4);
        ck_assert_uint_eq(rs.slots[2].len, 2);
        ck_assert_mem_eq(rs.slots[2].data, "p:", 2);
        ck_assert_uint_eq(rs.slots[3].len, 6);

        /* An init that finds the wrong type in the shared data fails. */
        host_done(&h);
        ck_assert_int_eq(host_init(&h, "{\"prefix\":5}", "/out", 9, 2, 1), 0);
        ck_assert_int_eq(m.def->init(&h.ctx, &state), -EINVAL);

        ck_assert_int_eq(m.def->save(&h.ctx, entries, 2), 2);
        ck_assert_int_eq(m.def->save(&h.ctx, entries, 1), 3);

        result_slots_free(&rs);
        host_done(&h);
        module_unload(&m);
}
END_TEST

static void check_refused(const char *path, int expect, const char *const *mentions) {
        char err[1024] = "";
        Module m = { .dl = (void *) 1 };
        int r;

        r = module_load(&m, path, err, sizeof(err));
        ck_assert_msg(r == expect, "%s: %d (%s), expected %d", path, r, err, expect);
        ck_assert_ptr_null(m.dl);
        ck_assert_ptr_null(m.def);
        ck_assert_msg(err[0], "%s: no error message", path);
        for (; *mentions; mentions++)
                assert_contains(err, *mentions);
}

START_TEST(test_load_nosym) {
        check_refused(module_path("nosym"), -ENOENT,
                      (const char *const[]){ "no \"mplock_module\" symbol", "MPLOCK_MODULE_DEFINE", NULL });
}
END_TEST

START_TEST(test_load_badabi) {
        check_refused(module_path("badabi"), -EPROTONOSUPPORT,
                      (const char *const[]){ "ABI version 999", "supports version 1", NULL });
}
END_TEST

START_TEST(test_load_noprocess) {
        check_refused(module_path("noprocess"), -EINVAL, (const char *const[]){ "no process callback", NULL });
}
END_TEST

START_TEST(test_load_small) {
        check_refused(module_path("small"), -EPROTONOSUPPORT, (const char *const[]){ "too small", "8 bytes", NULL });
}
END_TEST

START_TEST(test_load_undefined) {
        check_refused(module_path("undefined"), -ENOEXEC,
                      (const char *const[]){ "cannot load module", "mplock_no_such_function", NULL });
}
END_TEST

START_TEST(test_load_not_a_module) {
        char path[PATH_MAX], file[PATH_MAX + 16];
        int dirfd = test_tmpdir(path, sizeof(path));

        /* Text where an ELF object should be. */
        test_write_file(dirfd, "text.so", "this is not a shared object\n", 28);
        snprintf(file, sizeof(file), "%s/text.so", path);
        check_refused(file, -ENOEXEC, (const char *const[]){ "cannot load module", NULL });

        /* An empty file. */
        test_write_file(dirfd, "empty.so", "", 0);
        snprintf(file, sizeof(file), "%s/empty.so", path);
        check_refused(file, -ENOEXEC, (const char *const[]){ "cannot load module", NULL });

        /* Nothing there. */
        snprintf(file, sizeof(file), "%s/missing.so", path);
        check_refused(file, -ENOENT, (const char *const[]){ file, "No such file", NULL });

        /* A directory, and a relative path (to a real module). */
        check_refused(path, -EINVAL, (const char *const[]){ path, "not a regular file", NULL });
        check_refused("good.so", -EINVAL, (const char *const[]){ "good.so", "not an absolute path", NULL });
        check_refused("./tests/modules/test-good.so", -EINVAL, (const char *const[]){ "not an absolute path", NULL });
        check_refused("", -EINVAL, (const char *const[]){ "not an absolute path", NULL });
        close(dirfd);
}
END_TEST

START_TEST(test_load_short_error_buffer) {
        /* Messages are cut to the buffer, and still terminated. */
        char err[16];
        Module m;

        memset(err, 'x', sizeof(err));
        ck_assert_int_eq(module_load(&m, module_path("badabi"), err, sizeof(err)), -EPROTONOSUPPORT);
        ck_assert_uint_eq(strlen(err), sizeof(err) - 1);
}
END_TEST

/* --- shared data ----------------------------------------------------------- */

static const char shared_json[] = "{\"n\": 5, \"s\": \"x\", \"b\": true, \"d\": 1.5, \"a\": [\"p\", 7, {}, null, 2.5, false],"
                                  " \"o\": {\"n\": 1}, \"z\": null, \"neg\": -3}";

START_TEST(test_host_ctx) {
        Host h;

        ck_assert_int_eq(host_init(&h, shared_json, "/srv/out", 77, 4, 16), 0);
        ck_assert_uint_eq(h.ctx.size, sizeof(mplock_ctx));
        ck_assert_uint_eq(h.ctx.job_id, 77);
        ck_assert_uint_eq(h.ctx.worker, MPLOCK_WORKER_SAVER);
        ck_assert_uint_eq(h.ctx.workers, 4);
        ck_assert_uint_eq(h.ctx.batch_size, 16);
        ck_assert_str_eq(h.ctx.output_dir, "/srv/out");
        ck_assert_str_eq(h.ctx.shared_json, shared_json);
        ck_assert_ptr_eq(h.ctx.api, &host_api);
        ck_assert_ptr_eq(h.ctx.host, &h);
        ck_assert_uint_eq(host_api.size, sizeof(mplock_api));
        host_done(&h);
        ck_assert_ptr_null(h.shared);

        /* Shared data must be one JSON object. */
        ck_assert_int_eq(host_init(&h, "", "/o", 1, 1, 1), -EINVAL);
        ck_assert_int_eq(host_init(&h, "{", "/o", 1, 1, 1), -EINVAL);
        ck_assert_int_eq(host_init(&h, "[1]", "/o", 1, 1, 1), -EINVAL);
        ck_assert_int_eq(host_init(&h, "\"s\"", "/o", 1, 1, 1), -EINVAL);
        ck_assert_int_eq(host_init(&h, "{} {}", "/o", 1, 1, 1), -EINVAL);
        ck_assert_ptr_null(h.shared);
        ck_assert_int_eq(host_init(&h, "{}", "/o", 1, 1, 1), 0);
        host_done(&h);
}
END_TEST

START_TEST(test_shared_scalars) {
        Host h;
        const mplock_ctx *ctx = &h.ctx;
        const mplock_api *api;
        int64_t i = 0;
        double d = 0;
        int b = 0;
        const char *s = NULL;

        ck_assert_int_eq(host_init(&h, shared_json, "/out", 1, 1, 1), 0);
        api = ctx->api;

        ck_assert_int_eq(api->shared_int(ctx, "n", &i), 0);
        ck_assert_int_eq(i, 5);
        ck_assert_int_eq(api->shared_int(ctx, "neg", &i), 0);
        ck_assert_int_eq(i, -3);
        i = 99;
        ck_assert_int_eq(api->shared_int(ctx, "missing", &i), -ENOENT);
        ck_assert_int_eq(api->shared_int(ctx, "z", &i), -ENOENT); /* null is absent */
        ck_assert_int_eq(api->shared_int(ctx, "d", &i), -EINVAL);
        ck_assert_int_eq(api->shared_int(ctx, "s", &i), -EINVAL);
        ck_assert_int_eq(api->shared_int(ctx, "b", &i), -EINVAL);
        ck_assert_int_eq(api->shared_int(ctx, "a", &i), -EINVAL);
        ck_assert_int_eq(api->shared_int(ctx, NULL, &i), -ENOENT);
        ck_assert_int_eq(i, 99); /* untouched on failure */

        ck_assert_int_eq(api->shared_double(ctx, "d", &d), 0);
        ck_assert(d == 1.5);
        ck_assert_int_eq(api->shared_double(ctx, "n", &d), 0);
        ck_assert(d == 5.0);
        ck_assert_int_eq(api->shared_double(ctx, "missing", &d), -ENOENT);
        ck_assert_int_eq(api->shared_double(ctx, "s", &d), -EINVAL);
        ck_assert_int_eq(api->shared_double(ctx, "b", &d), -EINVAL);

        ck_assert_int_eq(api->shared_bool(ctx, "b", &b), 0);
        ck_assert_int_eq(b, 1);
        ck_assert_int_eq(api->shared_bool(ctx, "missing", &b), -ENOENT);
        ck_assert_int_eq(api->shared_bool(ctx, "n", &b), -EINVAL);
        ck_assert_int_eq(api->shared_bool(ctx, "s", &b), -EINVAL);

        ck_assert_int_eq(api->shared_string(ctx, "s", &s), 0);
        ck_assert_str_eq(s, "x");
        ck_assert_int_eq(api->shared_string(ctx, "missing", &s), -ENOENT);
        ck_assert_int_eq(api->shared_string(ctx, "n", &s), -EINVAL);
        ck_assert_int_eq(api->shared_string(ctx, "o", &s), -EINVAL);
        ck_assert_int_eq(api->shared_string(ctx, "a", &s), -EINVAL);
        /* Only top-level keys. */
        ck_assert_int_eq(api->shared_int(ctx, "o.n", &i), -ENOENT);

        /* No host behind the context. */
        {
                mplock_ctx bare = { .api = &host_api };

                ck_assert_int_eq(api->shared_int(&bare, "n", &i), -ENOENT);
                ck_assert_int_eq(api->shared_int(NULL, "n", &i), -ENOENT);
        }
        host_done(&h);
}
END_TEST

START_TEST(test_shared_arrays) {
        Host h;
        const mplock_ctx *ctx = &h.ctx;
        const mplock_api *api;
        size_t n = 0;
        const char *s = NULL;

        ck_assert_int_eq(host_init(&h, shared_json, "/out", 1, 1, 1), 0);
        api = ctx->api;

        ck_assert_int_eq(api->shared_array_size(ctx, "a", &n), 0);
        ck_assert_uint_eq(n, 6);
        ck_assert_int_eq(api->shared_array_size(ctx, "missing", &n), -ENOENT);
        ck_assert_int_eq(api->shared_array_size(ctx, "s", &n), -EINVAL);
        ck_assert_int_eq(api->shared_array_size(ctx, "o", &n), -EINVAL);

        ck_assert_int_eq(api->shared_array_string(ctx, "a", 0, &s), 0);
        ck_assert_str_eq(s, "p");
        /* Numbers and booleans in their JSON spelling. */
        ck_assert_int_eq(api->shared_array_string(ctx, "a", 1, &s), 0);
        ck_assert_str_eq(s, "7");
        ck_assert_int_eq(api->shared_array_string(ctx, "a", 4, &s), 0);
        ck_assert_str_eq(s, "2.5");
        ck_assert_int_eq(api->shared_array_string(ctx, "a", 5, &s), 0);
        ck_assert_str_eq(s, "false");
        /* Containers and null have no string form. */
        ck_assert_int_eq(api->shared_array_string(ctx, "a", 2, &s), -EINVAL);
        ck_assert_int_eq(api->shared_array_string(ctx, "a", 3, &s), -EINVAL);
        /* Past the end. */
        ck_assert_int_eq(api->shared_array_string(ctx, "a", 6, &s), -ERANGE);
        ck_assert_int_eq(api->shared_array_string(ctx, "a", SIZE_MAX, &s), -ERANGE);
        ck_assert_int_eq(api->shared_array_string(ctx, "missing", 0, &s), -ENOENT);
        ck_assert_int_eq(api->shared_array_string(ctx, "s", 0, &s), -EINVAL);

        /* Strings stay valid: asking again gives the same text. */
        {
                const char *first = NULL, *again = NULL;

                ck_assert_int_eq(api->shared_array_string(ctx, "a", 1, &first), 0);
                ck_assert_int_eq(api->shared_array_string(ctx, "a", 1, &again), 0);
                ck_assert_ptr_eq(first, again);
        }
        host_done(&h);
}
END_TEST

START_TEST(test_shared_brief_example) {
        /* The exact document from the module documentation's example. */
        Host h;
        const mplock_ctx *ctx = &h.ctx;
        int64_t i;
        double d;
        int b;
        size_t n;
        const char *s;

        ck_assert_int_eq(host_init(&h, "{\"n\": 5, \"s\": \"x\", \"b\": true, \"d\": 1.5, \"a\": [\"p\", 7]}", "/o", 1, 1,
                                   1),
                         0);
        ck_assert_int_eq(host_api.shared_int(ctx, "n", &i), 0);
        ck_assert_int_eq(i, 5);
        ck_assert_int_eq(host_api.shared_double(ctx, "d", &d), 0);
        ck_assert(d == 1.5);
        ck_assert_int_eq(host_api.shared_bool(ctx, "b", &b), 0);
        ck_assert_int_eq(b, 1);
        ck_assert_int_eq(host_api.shared_string(ctx, "s", &s), 0);
        ck_assert_str_eq(s, "x");
        ck_assert_int_eq(host_api.shared_array_size(ctx, "a", &n), 0);
        ck_assert_uint_eq(n, 2);
        ck_assert_int_eq(host_api.shared_array_string(ctx, "a", 1, &s), 0);
        ck_assert_str_eq(s, "7");
        ck_assert_int_eq(host_api.shared_array_string(ctx, "a", 2, &s), -ERANGE);
        ck_assert_int_eq(host_api.shared_int(ctx, "nope", &i), -ENOENT);
        ck_assert_int_eq(host_api.shared_int(ctx, "s", &i), -EINVAL);
        host_done(&h);
}
END_TEST

/* --- results --------------------------------------------------------------- */

START_TEST(test_result_set) {
        ResultSlots rs = {};
        mplock_results out = { .api = &host_api, .host = &rs };
        char small[4] = "abc";

        ck_assert_int_eq(result_slots_reset(&rs, 3), 0);
        ck_assert_uint_eq(rs.n, 3);
        for (size_t i = 0; i < 3; i++)
                ck_assert(!rs.slots[i].set);

        ck_assert_int_eq(host_api.result_set(&out, 0, "hello", 5), 0);
        ck_assert(rs.slots[0].set);
        ck_assert_int_eq(rs.slots[0].status, 0);
        ck_assert_uint_eq(rs.slots[0].len, 5);
        ck_assert_mem_eq(rs.slots[0].data, "hello", 5);
        /* The last result set wins. */
        ck_assert_int_eq(host_api.result_set(&out, 0, "bye", 3), 0);
        ck_assert_uint_eq(rs.slots[0].len, 3);
        ck_assert_mem_eq(rs.slots[0].data, "bye", 3);
        /* An empty result is a result. */
        ck_assert_int_eq(host_api.result_set(&out, 2, NULL, 0), 0);
        ck_assert(rs.slots[2].set);
        ck_assert_uint_eq(rs.slots[2].len, 0);
        ck_assert(!rs.slots[1].set);

        /* Bad index. */
        ck_assert_int_eq(host_api.result_set(&out, 3, "x", 1), -ERANGE);
        ck_assert_int_eq(host_api.result_set(&out, SIZE_MAX, "x", 1), -ERANGE);
        /* Too large: refused before a byte of the (small) buffer is read. */
        ck_assert_int_eq(host_api.result_set(&out, 1, small, (size_t) MPLOCK_RESULT_MAX + 1), -E2BIG);
        ck_assert_int_eq(host_api.result_set(&out, 1, small, SIZE_MAX), -E2BIG);
        ck_assert(!rs.slots[1].set);
        /* A length without data. */
        ck_assert_int_eq(host_api.result_set(&out, 1, NULL, 1), -EINVAL);
        ck_assert(!rs.slots[1].set);
        /* No slots behind the handle. */
        {
                mplock_results none = { .api = &host_api };

                ck_assert_int_eq(host_api.result_set(&none, 0, "x", 1), -ERANGE);
                ck_assert_int_eq(host_api.result_error(&none, 0, -1, "x"), -ERANGE);
        }

        /* Exactly the maximum is fine. */
        {
                char *big = malloc(MPLOCK_RESULT_MAX);

                ck_assert_ptr_nonnull(big);
                memset(big, 'r', MPLOCK_RESULT_MAX);
                ck_assert_int_eq(host_api.result_set(&out, 1, big, MPLOCK_RESULT_MAX), 0);
                ck_assert_uint_eq(rs.slots[1].len, MPLOCK_RESULT_MAX);
                ck_assert_int_eq(rs.slots[1].data[MPLOCK_RESULT_MAX - 1], 'r');
                free(big);
        }

        /* A reset forgets results but can be smaller or larger. */
        ck_assert_int_eq(result_slots_reset(&rs, 1), 0);
        ck_assert(!rs.slots[0].set);
        ck_assert_int_eq(host_api.result_set(&out, 1, "x", 1), -ERANGE);
        ck_assert_int_eq(result_slots_reset(&rs, 10), 0);
        for (size_t i = 0; i < 10; i++)
                ck_assert(!rs.slots[i].set);
        ck_assert_int_eq(host_api.result_set(&out, 9, "nine", 4), 0);
        ck_assert_mem_eq(rs.slots[9].data, "nine", 4);
        result_slots_free(&rs);
        ck_assert_ptr_null(rs.slots);
}
END_TEST

START_TEST(test_result_error) {
        ResultSlots rs = {};
        mplock_results out = { .api = &host_api, .host = &rs };

        ck_assert_int_eq(result_slots_reset(&rs, 2), 0);
        ck_assert_int_eq(host_api.result_error(&out, 0, -5, "bad input"), 0);
        ck_assert(rs.slots[0].set);
        ck_assert_int_eq(rs.slots[0].status, -5);
        ck_assert_uint_eq(rs.slots[0].len, 9);
        ck_assert_mem_eq(rs.slots[0].data, "bad input", 9);

        /* Code 0 would read as success: it is stored as an error code. */
        ck_assert_int_eq(host_api.result_error(&out, 1, 0, "oops"), 0);
        ck_assert_int_ne(rs.slots[1].status, 0);
        ck_assert_int_eq(rs.slots[1].status, MPLOCK_ERR_PROCESS);
        ck_assert_mem_eq(rs.slots[1].data, "oops", 4);

        /* Positive codes are kept as given. */
        ck_assert_int_eq(host_api.result_error(&out, 1, 17, "x"), 0);
        ck_assert_int_eq(rs.slots[1].status, 17);

        /* No message: still a message. */
        ck_assert_int_eq(host_api.result_error(&out, 1, -1, NULL), 0);
        ck_assert_uint_gt(rs.slots[1].len, 0);

        /* A result after an error replaces it, status included. */
        ck_assert_int_eq(host_api.result_set(&out, 0, "fine", 4), 0);
        ck_assert_int_eq(rs.slots[0].status, 0);
        ck_assert_mem_eq(rs.slots[0].data, "fine", 4);

        ck_assert_int_eq(host_api.result_error(&out, 2, -1, "x"), -ERANGE);

        /* The module.h helpers go through the same functions. */
        ck_assert_int_eq(mplock_result_string(&out, 0, "str"), 0);
        ck_assert_mem_eq(rs.slots[0].data, "str", 3);
        ck_assert_int_eq(mplock_result_printf(&out, 1, "%d-%s", 42, "x"), 0);
        ck_assert_int_eq(rs.slots[1].status, 0);
        ck_assert_uint_eq(rs.slots[1].len, 4);
        ck_assert_mem_eq(rs.slots[1].data, "42-x", 4);
        ck_assert_int_eq(mplock_result_printf(&out, 1, "%0600d", 7), 0);
        ck_assert_uint_eq(rs.slots[1].len, 600);
        ck_assert_int_eq(rs.slots[1].data[599], '7');
        result_slots_free(&rs);
}
END_TEST

/* --- 1.1 ------------------------------------------------------------------ */

/* A module built against the 1.0 header loads, its short definition read
 * with zeros for what 1.1 added, and runs. */
START_TEST(test_load_v10) {
        mplock_item it = { .data = "x", .len = 1, .index = 0 };
        ResultSlots rs = {};
        mplock_results out = { .api = &host_api, .host = &rs };
        char err[512] = "";
        Module m;
        Host h;

        ck_assert_int_eq(module_load(&m, module_path("v10"), err, sizeof(err)), 0);
        ck_assert_uint_eq(m.def->abi_minor, 0);
        ck_assert_ptr_null(m.def->save_init);
        ck_assert_ptr_null(m.def->save_batch);
        ck_assert_ptr_null(m.def->save_fini);
        ck_assert_ptr_nonnull(m.def->save);
        ck_assert_int_eq(host_init(&h, "{}", "/o", 1, 1, 1), 0);
        ck_assert_int_eq(result_slots_reset(&rs, 1), 0);
        ck_assert_int_eq(m.def->process(&h.ctx, NULL, &it, 1, &out), 0);
        ck_assert_mem_eq(rs.slots[0].data, "v10:x", 5);
        result_slots_free(&rs);
        host_done(&h);
        module_unload(&m);
}
END_TEST

START_TEST(test_load_future_minor) {
        check_refused(module_path("future"), -EPROTONOSUPPORT,
                      (const char *const[]){ "needs module ABI 1.99", "supports 1.2", "MPLOCK_API_HAS", NULL });
}
END_TEST

static const char pointer_json[] =
        "{\"model\":{\"layers\":[1.5,2,-3],\"name\":\"m\",\"deep\":{\"x\":[[7]]}},"
        "\"a/b\":1,\"c~d\":2,\"flag\":true,\"nul\":null,\"s\":\"t\\u0000u\"}";

START_TEST(test_shared_pointers) {
        const mplock_api *api = &host_api;
        const mplock_ctx *ctx;
        double d[4];
        int64_t i = 0;
        size_t n = 0, len = 0;
        const char *s = NULL;
        int t = -1, b = 0;
        Host h;

        ck_assert_int_eq(host_init(&h, pointer_json, "/o", 1, 1, 1), 0);
        ctx = &h.ctx;
        ck_assert_int_eq(api->shared_type(ctx, "", &t), 0);
        ck_assert_int_eq(t, MPLOCK_JSON_OBJECT);
        ck_assert_int_eq(api->shared_type(ctx, "/model/layers", &t), 0);
        ck_assert_int_eq(t, MPLOCK_JSON_ARRAY);
        ck_assert_int_eq(api->shared_type(ctx, "/nul", &t), 0);
        ck_assert_int_eq(t, MPLOCK_JSON_NULL);
        ck_assert_int_eq(api->shared_get_double(ctx, "/model/layers/0", &d[0]), 0);
        ck_assert(d[0] == 1.5);
        ck_assert_int_eq(api->shared_get_int(ctx, "/model/layers/1", &i), 0);
        ck_assert_int_eq(i, 2);
        ck_assert_int_eq(api->shared_get_int(ctx, "/model/deep/x/0/0", &i), 0);
        ck_assert_int_eq(i, 7);
        /* Escapes: "~1" is "/", "~0" is "~". */
        ck_assert_int_eq(api->shared_get_int(ctx, "/a~1b", &i), 0);
        ck_assert_int_eq(i, 1);
        ck_assert_int_eq(api->shared_get_int(ctx, "/c~0d", &i), 0);
        ck_assert_int_eq(i, 2);
        ck_assert_int_eq(api->shared_get_int(ctx, "/c~2d", &i), -EINVAL);
        ck_assert_int_eq(api->shared_get_int(ctx, "model", &i), -EINVAL); /* no leading slash */
        /* Nothing there, or of another type. */
        ck_assert_int_eq(api->shared_get_int(ctx, "/model/layers/3", &i), -ENOENT);
        ck_assert_int_eq(api->shared_get_int(ctx, "/model/layers/01", &i), -ENOENT);
        ck_assert_int_eq(api->shared_get_int(ctx, "/model/layers/-1", &i), -ENOENT);
        ck_assert_int_eq(api->shared_get_int(ctx, "/model/nope", &i), -ENOENT);
        ck_assert_int_eq(api->shared_get_int(ctx, "/model/name/x", &i), -ENOENT);
        ck_assert_int_eq(api->shared_get_int(ctx, "/model/layers/0", &i), -EINVAL); /* a double */
        ck_assert_int_eq(api->shared_get_bool(ctx, "/flag", &b), 0);
        ck_assert_int_eq(b, 1);
        ck_assert_int_eq(api->shared_get_bool(ctx, "/nul", &b), -EINVAL);
        /* Strings with their length: a NUL inside is kept. */
        ck_assert_int_eq(api->shared_get_string(ctx, "/s", &s, &len), 0);
        ck_assert_uint_eq(len, 3);
        ck_assert_mem_eq(s, "t\0u", 3);
        /* Counting, keys in their order, arrays of numbers. */
        ck_assert_int_eq(api->shared_count(ctx, "/model", &n), 0);
        ck_assert_uint_eq(n, 3);
        ck_assert_int_eq(api->shared_key(ctx, "/model", 0, &s), 0);
        ck_assert_str_eq(s, "layers");
        ck_assert_int_eq(api->shared_key(ctx, "/model", 2, &s), 0);
        ck_assert_str_eq(s, "deep");
        ck_assert_int_eq(api->shared_key(ctx, "/model", 3, &s), -ERANGE);
        ck_assert_int_eq(api->shared_key(ctx, "/model/layers", 0, &s), -EINVAL);
        ck_assert_int_eq(api->shared_doubles(ctx, "/model/layers", d, 4, &n), 0);
        ck_assert_uint_eq(n, 3);
        ck_assert(d[0] == 1.5 && d[1] == 2 && d[2] == -3);
        d[0] = 99;
        ck_assert_int_eq(api->shared_doubles(ctx, "/model/layers", d, 2, &n), -E2BIG);
        ck_assert(d[0] == 99); /* nothing written */
        ck_assert_int_eq(api->shared_doubles(ctx, "/model/deep/x", d, 4, &n), -EINVAL);
        host_done(&h);
}
END_TEST

static char logged[256];
static int logged_level;

static void capture_log(void *userdata, int level, const char *message) {
        (void) userdata;
        logged_level = level;
        (void) snprintf(logged, sizeof(logged), "%s", message);
}

START_TEST(test_fail_attempt_log) {
        ResultSlots rs = {};
        mplock_results out = { .api = &host_api, .host = &rs };
        Host h;

        ck_assert_int_eq(result_slots_reset(&rs, 2), 0);
        /* Permanent, or not. */
        ck_assert_int_eq(mplock_result_fail(&out, 0, -7, "never"), 0);
        ck_assert(rs.slots[0].final);
        ck_assert_int_eq(rs.slots[0].status, -7);
        ck_assert_int_eq(host_api.result_fail(&out, 1, -8, "maybe", 0), 0);
        ck_assert(!rs.slots[1].final);
        ck_assert_int_eq(host_api.result_fail(&out, 1, -8, "x", 4), -EINVAL);
        ck_assert_int_eq(host_api.result_fail(&out, 2, -8, "x", 0), -ERANGE);
        ck_assert_int_eq(result_slots_reset(&rs, 2), 0);
        ck_assert(!rs.slots[0].final); /* per call */
        /* The attempt the runner said this call is. */
        ck_assert_uint_eq(host_api.attempt(&out, 0), 1);
        rs.attempt = 3;
        ck_assert_uint_eq(host_api.attempt(&out, 1), 3);
        ck_assert_uint_eq(host_api.attempt(&out, 2), 0);
        result_slots_free(&rs);

        /* Log lines go to the hook, one printable line, level in range. */
        ck_assert_int_eq(host_init(&h, "{}", "/o", 1, 1, 1), 0);
        h.log = capture_log;
        mplock_log(&h.ctx, MPLOCK_LOG_WARNING, "low on %s\nmemory %d", "space", 5);
        ck_assert_str_eq(logged, "low on space memory 5");
        ck_assert_int_eq(logged_level, MPLOCK_LOG_WARNING);
        mplock_log(&h.ctx, 99, "x");
        ck_assert_int_eq(logged_level, MPLOCK_LOG_DEBUG);
        host_api.error_message(&h.ctx, "no model at /m");
        ck_assert_str_eq(h.error_message, "no model at /m");
        host_done(&h);
}
END_TEST

/* Regressions: bugs in shared_int() (runner/module.c) found by these tests, fixed since. */

START_TEST(test_shared_int_out_of_range) {
        /* json-c keeps integers above INT64_MAX as uint64, and
         * json_object_get_int64() saturates them: the module is handed
         * INT64_MAX with success instead of an error. */
        Host h;
        int64_t i = 0;
        int r;

        ck_assert_int_eq(host_init(&h, "{\"big\":18446744073709551615}", "/o", 1, 1, 1), 0);
        r = host_api.shared_int(&h.ctx, "big", &i);
        ck_assert_msg(r < 0, "shared_int() gave %lld for 18446744073709551615", (long long) i);
        host_done(&h);
}
END_TEST

static Suite *module_suite(void) {
        Suite *s = suite_create("module");
        TCase *tc_load = tcase_create("load"), *tc_host = tcase_create("host");

        tcase_add_test(tc_load, test_load_good);
        tcase_add_test(tc_load, test_good_callbacks);
        tcase_add_test(tc_load, test_load_nosym);
        tcase_add_test(tc_load, test_load_badabi);
        tcase_add_test(tc_load, test_load_noprocess);
        tcase_add_test(tc_load, test_load_small);
        tcase_add_test(tc_load, test_load_undefined);
        tcase_add_test(tc_load, test_load_not_a_module);
        tcase_add_test(tc_load, test_load_short_error_buffer);
        tcase_add_test(tc_load, test_load_v10);
        tcase_add_test(tc_load, test_load_future_minor);
        suite_add_tcase(s, tc_load);

        tcase_set_timeout(tc_host, 20);
        tcase_add_test(tc_host, test_host_ctx);
        tcase_add_test(tc_host, test_shared_scalars);
        tcase_add_test(tc_host, test_shared_arrays);
        tcase_add_test(tc_host, test_shared_brief_example);
        tcase_add_test(tc_host, test_result_set);
        tcase_add_test(tc_host, test_result_error);
        tcase_add_test(tc_host, test_shared_pointers);
        tcase_add_test(tc_host, test_fail_attempt_log);
        suite_add_tcase(s, tc_host);
        {
                TCase *tc_bugs = tcase_create("regressions");

                tcase_add_test(tc_bugs, test_shared_int_out_of_range);
                suite_add_tcase(s, tc_bugs);
        }
        return s;
}

int main(void) {
        return test_run_suite(module_suite());
}
