/* SPDX-License-Identifier: MIT */
/* A shared object that is not an mplock module: no mplock_module symbol. */
int nosym_answer(void);

int nosym_answer(void) {
        return 42;
}
