/* SPDX-License-Identifier: MIT */
/* Fuzz target: base64 and UTF-8 as mplockctl and mplock.Client meet them
 * in the daemon's Results replies (item_base64, result_base64), and the
 * invariants that tie the three functions together; and the sbatch
 * options a Slurm job's owner adds. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "slurmopt.h"
#include "text.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        const char *s = (const char *) data;
        char *dec = NULL, *enc, *clean, *again;
        size_t n, m, k;

        /* Whatever decodes encodes back to the same text (the alphabet has
         * one spelling per value, up to the padding bits). */
        if (base64_decode(s, size, &dec, &n) == 0) {
                enc = base64_encode(dec, n, &m);
                if (!enc || base64_decode(enc, m, &again, &k) != 0 || k != n || memcmp(again, dec, n) != 0)
                        abort();
                free(again);
                free(enc);
                free(dec);
        }
        /* Any bytes round-trip through base64. */
        enc = base64_encode(data, size, &m);
        if (!enc || base64_decode(enc, m, &dec, &n) != 0 || n != size || memcmp(dec, data, size) != 0)
                abort();
        free(enc);
        free(dec);
        /* Sanitized text is valid, and valid text is left as it is. */
        clean = utf8_sanitize(s, size, &n);
        if (!clean || !utf8_valid(clean, n) || (utf8_valid(s, size) && (n != size || memcmp(clean, s, size) != 0)))
                abort();
        free(clean);
        /* sbatch options (--slurm-opt): what passes the check splits into
         * words that each pass it alone. */
        clean = strndup(s, size);
        if (clean && slurm_options_check(clean, NULL, 0) == 0) {
                char **v;
                if (slurm_options_split(clean, &v) != 0)
                        abort();
                for (size_t i = 0; v[i]; i++)
                        if (!v[i][0] || strchr(v[i], ' ') || slurm_options_check(v[i], NULL, 0) != 0)
                                abort();
                strv_free(v);
        }
        free(clean);
        return 0;
}
