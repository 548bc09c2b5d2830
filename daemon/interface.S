/* The Varlink interface description, embedded verbatim so that
 * GetInterfaceDescription serves exactly the file in the source tree. */
        .section .rodata
        .global mplock_varlink_interface
        .type mplock_varlink_interface, @object
mplock_varlink_interface:
        .incbin VARLINK_FILE
        .byte 0
        .size mplock_varlink_interface, . - mplock_varlink_interface
        .section .note.GNU-stack,"",@progbits
