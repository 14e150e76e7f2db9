/*
 * The throwing C++ `operator new` forms, written in C so that std::bad_alloc can propagate.
 *
 * A C++ exception may not unwind through a Rust frame of this crate (built with
 * panic = "abort", any unwind reaching a Rust frame aborts). So the exported `_Znwm` & co. are
 * naked Rust trampolines that tail-jump here (src/ffi/cxx.rs), leaving no Rust frame on the
 * stack, and these functions do what the C++ standard asks: try, call the installed
 * new_handler and retry, or throw std::bad_alloc when there is none.
 *
 * libstdc++ is not linked into liboxmalloc.so (a C program that preloads us should not load
 * it); its entry points are looked up with dlsym on the failure path only. A program that
 * calls operator new has libstdc++ loaded. If it somehow has not, we print a fixed line and
 * abort. No allocator lock is held here, so the nested mallocs of dlsym and
 * __cxa_allocate_exception are fine.
 */
#include <dlfcn.h>
#include <stddef.h>
#include <stdlib.h>
#include <unistd.h>

typedef void (*ox_new_handler)(void);

__attribute__((noreturn, cold)) static void ox_die(void) {
    static const char msg[] = "oxmalloc: operator new(): out of memory\n";
    ssize_t r = write(2, msg, sizeof msg - 1);
    (void)r;
    abort();
}

__attribute__((noreturn, cold)) static void ox_throw_bad_alloc(void) {
    void *(*alloc_exc)(size_t) =
        (void *(*)(size_t))dlsym(RTLD_DEFAULT, "__cxa_allocate_exception");
    void (*cxa_throw)(void *, void *, void (*)(void *)) =
        (void (*)(void *, void *, void (*)(void *)))dlsym(RTLD_DEFAULT, "__cxa_throw");
    void *typeinfo = dlsym(RTLD_DEFAULT, "_ZTISt9bad_alloc");
    char *vtable = (char *)dlsym(RTLD_DEFAULT, "_ZTVSt9bad_alloc");
    void (*dtor)(void *) = (void (*)(void *))dlsym(RTLD_DEFAULT, "_ZNSt9bad_allocD1Ev");
    if (!alloc_exc || !cxa_throw || !typeinfo || !vtable || !dtor)
        ox_die();
    /* std::bad_alloc is one vtable pointer; the vtable's address point is 2 words in. */
    void **exc = (void **)alloc_exc(sizeof(void *));
    *exc = vtable + 2 * sizeof(void *);
    cxa_throw(exc, typeinfo, dtor);
    ox_die();
}

__attribute__((noinline, cold)) static void *ox_new_slow(size_t size, size_t align) {
    for (;;) {
        ox_new_handler (*get)(void) =
            (ox_new_handler(*)(void))dlsym(RTLD_DEFAULT, "_ZSt15get_new_handlerv");
        ox_new_handler h = get ? get() : NULL;
        if (!h)
            ox_throw_bad_alloc();
        h();
        void *p = align ? aligned_alloc(align, size) : malloc(size);
        if (p)
            return p;
    }
}

__attribute__((visibility("hidden"))) void *oxmalloc_cxx_new(size_t size) {
    void *p = malloc(size);
    if (__builtin_expect(p != NULL, 1))
        return p;
    return ox_new_slow(size, 0);
}

__attribute__((visibility("hidden"))) void *oxmalloc_cxx_new_aligned(size_t size, size_t align) {
    void *p = aligned_alloc(align, size);
    if (__builtin_expect(p != NULL, 1))
        return p;
    return ox_new_slow(size, align);
}
