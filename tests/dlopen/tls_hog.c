/* A library with 128 B of initial-exec thread-locals: dlopen_probe.c loads copies of it
 * until glibc's static TLS for libraries loaded after start-up is used up. */
__attribute__((tls_model("initial-exec"))) __thread char dm_tls_hog[128];

char* dm_tls_hog_touch(void) {
    dm_tls_hog[0] = 1;
    return dm_tls_hog;
}
