/*
 * An NVML test double at the C ABI: a stand-in for NVIDIA's libnvidia-ml.so.1.
 *
 * hpresil's agent reads GPUs through the real nvidia-ml-py bindings (pynvml), which
 * ctypes into libnvidia-ml.so.1 exactly as on a GPU node. This library exports the
 * functions hpresil and pynvml 13 call, with nvml.h's signatures, struct layouts and
 * return codes, and answers them from a text state file that scripts/gpu_double.py
 * writes (path in $NVML_DOUBLE_STATE; format below). The declarations here are our own
 * minimal ones, written from the public header (NVIDIA/go-nvml gen/nvml/nvml.h) and
 * pynvml.py; see /work/shared/reference/nvml-abi.md.
 *
 * Like a driver, it dereferences the pointers it is given. A struct that a caller
 * hands over by value instead of by reference (ctypes passes a bare Structure by
 * value: the callee gets a garbage pointer) is caught before it is touched: the
 * range must be readable and writable memory in /proc/self/maps, otherwise the
 * double prints "nvml double: <function> was given an invalid pointer <p> (a struct
 * passed by value?)" and aborts.
 *
 * State file: line based; the first line is the header below; '#' lines are comments.
 *     node <name> | preset <name> | driver_version <text> | nvml_version <text>
 *     cuda_driver_version <int> | fabric_info_versions 2,3 | init_error <nvmlReturn>
 *     gpu <i> <key> <value>      (keys: KEYS below, and the string/dotted keys)
 * A value "NA" makes the query answer NVML_ERROR_NOT_SUPPORTED. A numeric key that a
 * GPU lacks reads as NA. The file is re-read, when it changed, at nvmlInit*,
 * nvmlDeviceGetCount* and nvmlDeviceGetHandleByIndex* (stat compared; a file changed
 * within the last two seconds is re-read regardless, as timestamps are coarse).
 *
 * Choices where NVML leaves room:
 * - A lost GPU (lost 1) still enumerates and answers the static identity calls
 *   (UUID, serial, PCI info, name), as NVML keeps them; every other call on it
 *   answers NVML_ERROR_GPU_IS_LOST. A GPU that stopped enumerating (present 0)
 *   answers like a lost one through a handle taken before.
 * - ECC counters answer NOT_SUPPORTED while ECC is disabled or unknown.
 * - fabric_state NA: both fabric calls answer NOT_SUPPORTED (Ampere); 0..3: SUCCESS
 *   with that state.
 *
 * Build: scripts/nvml-double/build (-DNVML_DOUBLE_R535 for the 535 driver branch:
 * no nvmlDeviceGetGpuFabricInfoV, no nvmlDeviceGetSramEccErrorStatus, field 230
 * NOT_SUPPORTED).
 */

#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define API __attribute__((visibility("default")))

/* ---------- nvml.h: the types this double needs ---------- */

typedef int nvmlReturn_t;
enum {
    NVML_SUCCESS = 0,
    NVML_ERROR_UNINITIALIZED = 1,
    NVML_ERROR_INVALID_ARGUMENT = 2,
    NVML_ERROR_NOT_SUPPORTED = 3,
    NVML_ERROR_NOT_FOUND = 6,
    NVML_ERROR_INSUFFICIENT_SIZE = 7,
    NVML_ERROR_DRIVER_NOT_LOADED = 9,
    NVML_ERROR_GPU_IS_LOST = 15,
    NVML_ERROR_ARGUMENT_VERSION_MISMATCH = 25,
};

typedef struct gpu *nvmlDevice_t; /* opaque to callers */
typedef int nvmlEnableState_t;

typedef struct {
    char busIdLegacy[16];
    unsigned int domain;
    unsigned int bus;
    unsigned int device;
    unsigned int pciDeviceId;
    unsigned int pciSubSystemId;
    char busId[32];
} nvmlPciInfo_t;

typedef struct {
    unsigned int gpu;
    unsigned int memory;
} nvmlUtilization_t;

typedef struct {
    unsigned long long total;
    unsigned long long free;
    unsigned long long used;
} nvmlMemory_t;

typedef struct {
    unsigned int version;
    unsigned long long total;
    unsigned long long reserved;
    unsigned long long free;
    unsigned long long used;
} nvmlMemory_v2_t;
#define NVML_MEMORY_V2 0x02000028u

typedef struct {
    unsigned int version;
    int sensorType;
    int temperature;
} nvmlTemperature_v1_t;
#define NVML_TEMPERATURE_V1 0x0100000Cu

typedef union {
    double dVal;
    unsigned int uiVal;
    unsigned long ulVal;
    unsigned long long ullVal;
    signed long long sllVal;
    signed int siVal;
    unsigned short usVal;
} nvmlValue_t;

typedef struct {
    unsigned int fieldId;
    unsigned int scopeId;
    long long timestamp; /* microseconds since 1970 */
    long long latencyUsec;
    int valueType; /* nvmlValueType_t */
    nvmlReturn_t nvmlReturn;
    nvmlValue_t value;
} nvmlFieldValue_t;

typedef struct {
    unsigned char clusterUuid[16];
    nvmlReturn_t status;
    unsigned int cliqueId;
    unsigned char state; /* nvmlGpuFabricState_t is an unsigned char */
} nvmlGpuFabricInfo_t;

typedef struct {
    unsigned int version;
    unsigned char clusterUuid[16];
    nvmlReturn_t status;
    unsigned int cliqueId;
    unsigned char state;
    unsigned int healthMask;
} nvmlGpuFabricInfo_v2_t;
#define NVML_GPU_FABRIC_INFO_V2 0x02000024u

typedef struct {
    unsigned int version;
    unsigned char clusterUuid[16];
    nvmlReturn_t status;
    unsigned int cliqueId;
    unsigned char state;
    unsigned int healthMask;
    unsigned char healthSummary;
} nvmlGpuFabricInfo_v3_t;
#define NVML_GPU_FABRIC_INFO_V3 0x03000028u

typedef struct {
    unsigned int version;
    unsigned long long aggregateUncParity;
    unsigned long long aggregateUncSecDed;
    unsigned long long aggregateCor;
    unsigned long long volatileUncParity;
    unsigned long long volatileUncSecDed;
    unsigned long long volatileCor;
    unsigned long long aggregateUncBucketL2;
    unsigned long long aggregateUncBucketSm;
    unsigned long long aggregateUncBucketPcie;
    unsigned long long aggregateUncBucketMcu;
    unsigned long long aggregateUncBucketOther;
    unsigned int bThresholdExceeded;
} nvmlEccSramErrorStatus_v1_t;
#define NVML_ECC_SRAM_ERROR_STATUS_V1 0x01000068u

_Static_assert(sizeof(nvmlPciInfo_t) == 68, "nvmlPciInfo_t");
_Static_assert(sizeof(nvmlFieldValue_t) == 40, "nvmlFieldValue_t");
_Static_assert(sizeof(nvmlGpuFabricInfo_t) == 28, "nvmlGpuFabricInfo_t");
_Static_assert(sizeof(nvmlGpuFabricInfo_v2_t) == (NVML_GPU_FABRIC_INFO_V2 & 0xffffff), "v2");
_Static_assert(sizeof(nvmlGpuFabricInfo_v3_t) == (NVML_GPU_FABRIC_INFO_V3 & 0xffffff), "v3");
_Static_assert(sizeof(nvmlEccSramErrorStatus_v1_t) == (NVML_ECC_SRAM_ERROR_STATUS_V1 & 0xffffff),
               "sram");
_Static_assert(sizeof(nvmlMemory_v2_t) == (NVML_MEMORY_V2 & 0xffffff), "memory v2");
_Static_assert(sizeof(nvmlTemperature_v1_t) == (NVML_TEMPERATURE_V1 & 0xffffff), "temp v1");

/* Field ids (nvml.h NVML_FI_*), value types (nvmlValueType_t). */
enum {
    FI_PERF_POLICY_POWER = 74, /* = NVML_FI_DEV_CLOCKS_EVENT_REASON_SW_POWER_CAP */
    FI_PERF_POLICY_SYNC_BOOST = 76,
    FI_MEMORY_TEMP = 82,
    FI_GPU_RECOVERY_ACTION = 230,
    FI_CLOCKS_EVENT_SW_THERMAL = 269,
    FI_CLOCKS_EVENT_HW_THERMAL = 270,
    FI_CLOCKS_EVENT_HW_POWER_BRAKE = 271,
    FI_MAX = 308, /* pynvml 13.615 NVML_FI_MAX */
};
enum { VT_DOUBLE, VT_UINT, VT_ULONG, VT_ULONGLONG, VT_SLONGLONG, VT_SINT, VT_USHORT, VT_COUNT };

/* ---------- the state ---------- */

#define STATE_HEADER "# hpresil NVML double state, v1"
#define MAX_GPUS 64
#define MAX_LINKS 64
#define MAX_FAILS 32
#define MAX_FIELD_TYPES 32
#define MAX_FILE (4 << 20)

#define KEYS(X)                                                                          \
    X(present) X(lost) X(minor_number) X(persistence_mode)                              \
    X(pci_device_id) X(pci_subsystem_id)                                                \
    X(memory_total_mib) X(memory_reserved_mib) X(memory_used_mib)                       \
    X(temperature_c) X(memory_temperature_c) X(utilization_pct) X(memory_utilization_pct) \
    X(temp_shutdown_c) X(temp_slowdown_c) X(temp_gpu_max_c) X(temp_mem_max_c)           \
    X(ecc_enabled) X(ecc_pending_enabled)                                                \
    X(ecc_volatile_corrected_dram) X(ecc_volatile_corrected_sram)                        \
    X(ecc_volatile_uncorrected_dram) X(ecc_volatile_uncorrected_sram)                    \
    X(ecc_aggregate_corrected_dram) X(ecc_aggregate_corrected_sram)                      \
    X(ecc_aggregate_uncorrected_dram) X(ecc_aggregate_uncorrected_sram)                  \
    X(sram_threshold_exceeded)                                                           \
    X(row_remap_correctable) X(row_remap_uncorrectable) X(row_remap_pending)             \
    X(row_remap_failure)                                                                 \
    X(retired_pages_sbe) X(retired_pages_dbe) X(retired_pages_pending)                   \
    X(clock_event_reasons) X(clock_event_reasons_supported)                              \
    X(clock_counter_sw_power_cap_ns) X(clock_counter_sync_boost_ns)                      \
    X(clock_counter_sw_thermal_ns) X(clock_counter_hw_thermal_ns)                        \
    X(clock_counter_hw_power_brake_ns)                                                   \
    X(power_mw) X(power_limit_mw)                                                        \
    X(pcie_gen) X(pcie_gen_max) X(pcie_width) X(pcie_width_max) X(pcie_replays)          \
    X(nvlink_links)                                                                      \
    X(fabric_state) X(fabric_status) X(fabric_clique_id) X(fabric_health_mask)           \
    X(fabric_health_summary)                                                             \
    X(recovery_action)

#define AS_ENUM(k) K_##k,
#define AS_NAME(k) #k,
enum key { KEYS(AS_ENUM) K_COUNT };
static const char *const KEY_NAMES[K_COUNT] = {KEYS(AS_NAME)};

/* Per-link counters, in nvmlNvLinkErrorCounter_t order (DL_REPLAY .. DL_CRC_DATA). */
static const char *const LINK_COUNTERS[] = {"nvlink_replay", "nvlink_recovery",
                                            "nvlink_crc_flit", "nvlink_crc_data"};
#define N_LINK_COUNTERS 4

struct num {
    unsigned long long v;
    unsigned char na;
};

struct gpu {
    int slot; /* the GPU's number in the state file */
    int seen;
    char name[96], uuid[96], serial[32];
    unsigned int domain, bus, device;
    int has_bus;
    unsigned char cluster_uuid[16];
    struct num k[K_COUNT];
    unsigned long long link_counter[N_LINK_COUNTERS][MAX_LINKS];
    unsigned char link_down[MAX_LINKS];
    struct {
        char fn[64];
        int code;
    } fail[MAX_FAILS];
    int nfail;
    struct {
        unsigned int field;
        int type;
    } field_type[MAX_FIELD_TYPES];
    int nfield_type;
};

struct state {
    char driver_version[80], nvml_version[80];
    int cuda_driver_version;
    int init_error;
    unsigned int fabric_versions; /* bit v set: struct version v accepted */
    int ngpus;
    struct gpu gpus[MAX_GPUS];
};

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static struct state g_live;  /* handles point into g_live.gpus */
static struct state g_parse; /* a reload is parsed here, then copied */
static int g_loaded;         /* g_live holds a parsed file */
static int g_refs;           /* nvmlInit refcount */
static int g_no_gpus;        /* nvmlInitWithFlags(NVML_INIT_FLAG_NO_GPUS) */
static char g_path[4096];
static struct stat g_stat;
static char g_complained[4200]; /* the last problem printed, to print it once */

/* ---------- small helpers ---------- */

/* One line on stderr; outside nvmlInit, a problem already printed is not repeated. */
static void complain(int at_init, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void complain(int at_init, const char *fmt, ...)
{
    char line[sizeof g_complained];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (!at_init && strcmp(line, g_complained) == 0)
        return;
    snprintf(g_complained, sizeof g_complained, "%s", line);
    fprintf(stderr, "nvml double: %s\n", line);
}

/* 1 when [p, p + n) lies in mappings that are readable and writable. */
static int rw_range(const void *p, size_t n)
{
    uintptr_t cur = (uintptr_t)p, end = cur + n;
    if (p == NULL || end < cur)
        return 0;
    FILE *maps = fopen("/proc/self/maps", "re");
    if (maps == NULL)
        return 1; /* cannot tell: trust the caller */
    char line[4352];
    while (cur < end && fgets(line, sizeof line, maps) != NULL) {
        unsigned long lo, hi;
        char perms[8];
        if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) != 3)
            continue;
        if (lo <= cur && cur < hi) {
            if (perms[0] != 'r' || perms[1] != 'w')
                break;
            cur = hi;
        }
    }
    fclose(maps);
    return cur >= end;
}

/* Abort, like a driver would crash, when a struct pointer is not writable memory. */
static void check_struct(const char *fn, const void *p, size_t n)
{
    if (rw_range(p, n))
        return;
    fprintf(stderr, "nvml double: %s was given an invalid pointer %p (a struct passed by value?)\n",
            fn, p);
    fflush(stderr);
    abort();
}

static int parse_u64(const char *s, unsigned long long *out)
{
    char *end;
    if (*s == '\0' || *s == '-' || isspace((unsigned char)*s))
        return 0;
    errno = 0;
    *out = strtoull(s, &end, 0);
    return errno == 0 && *end == '\0';
}

static int parse_num(const char *s, struct num *out)
{
    if (strcmp(s, "NA") == 0) {
        out->na = 1;
        out->v = 0;
        return 1;
    }
    out->na = 0;
    return parse_u64(s, &out->v);
}

static int copy_text(char *dst, size_t size, const char *src)
{
    size_t n = strlen(src);
    if (n >= size)
        return 0;
    memcpy(dst, src, n + 1);
    return 1;
}

static int parse_bus_id(const char *s, unsigned int *domain, unsigned int *bus, unsigned int *dev)
{
    unsigned int a, b, c, fn;
    char tail;
    if (sscanf(s, "%x:%x:%x.%x%c", &a, &b, &c, &fn, &tail) == 4) {
        *domain = a, *bus = b, *dev = c;
        return b < 256 && c < 32;
    }
    if (sscanf(s, "%x:%x.%x%c", &b, &c, &fn, &tail) == 3) {
        *domain = 0, *bus = b, *dev = c;
        return b < 256 && c < 32;
    }
    return 0;
}

static int parse_uuid(const char *s, unsigned char out[16])
{
    int n = 0;
    for (const char *p = s; *p != '\0'; p++) {
        if (*p == '-')
            continue;
        if (!isxdigit((unsigned char)p[0]) || !isxdigit((unsigned char)p[1]) || n == 16)
            return 0;
        char byte[3] = {p[0], p[1], '\0'};
        out[n++] = (unsigned char)strtoul(byte, NULL, 16);
        p++;
    }
    return n == 16;
}

static int parse_list(const char *s, unsigned char *set, int size)
{
    memset(set, 0, (size_t)size);
    while (*s != '\0') {
        char *end;
        errno = 0;
        long v = strtol(s, &end, 10);
        if (end == s || errno != 0 || v < 0 || v >= size || (*end != ',' && *end != '\0'))
            return 0;
        set[v] = 1;
        s = *end == ',' ? end + 1 : end;
    }
    return 1;
}

/* ---------- parsing the state file ---------- */

static void gpu_defaults(struct gpu *g, int slot)
{
    memset(g, 0, sizeof *g);
    g->slot = slot;
    for (int i = 0; i < K_COUNT; i++)
        g->k[i].na = 1;
    g->k[K_present] = (struct num){1, 0};
    g->k[K_lost] = (struct num){0, 0};
    g->k[K_nvlink_links] = (struct num){0, 0};
}

static const char *gpu_key(struct gpu *g, const char *key, const char *value)
{
    for (int i = 0; i < K_COUNT; i++)
        if (strcmp(key, KEY_NAMES[i]) == 0)
            return parse_num(value, &g->k[i]) ? NULL : "not a number or NA";
    if (strcmp(key, "name") == 0)
        return copy_text(g->name, sizeof g->name, value) ? NULL : "too long";
    if (strcmp(key, "uuid") == 0)
        return copy_text(g->uuid, sizeof g->uuid, value) ? NULL : "too long";
    if (strcmp(key, "serial") == 0)
        return copy_text(g->serial, sizeof g->serial, value) ? NULL : "too long";
    if (strcmp(key, "pci_bus_id") == 0) {
        g->has_bus = parse_bus_id(value, &g->domain, &g->bus, &g->device);
        return g->has_bus ? NULL : "not a PCI bus id";
    }
    if (strcmp(key, "fabric_cluster_uuid") == 0) {
        memset(g->cluster_uuid, 0, 16);
        return strcmp(value, "NA") == 0 || parse_uuid(value, g->cluster_uuid) ? NULL
                                                                                : "not a UUID";
    }
    if (strcmp(key, "nvlink_down") == 0)
        return parse_list(value, g->link_down, MAX_LINKS) ? NULL : "not a list of links";
    const char *dot = strchr(key, '.');
    if (dot == NULL)
        return "unknown key";
    size_t prefix = (size_t)(dot - key);
    const char *sub = dot + 1;
    unsigned long long n;
    for (int c = 0; c < N_LINK_COUNTERS; c++) {
        if (strlen(LINK_COUNTERS[c]) == prefix && strncmp(key, LINK_COUNTERS[c], prefix) == 0) {
            if (!parse_u64(sub, &n) || n >= MAX_LINKS)
                return "bad link number";
            return parse_u64(value, &g->link_counter[c][n]) ? NULL : "not a number";
        }
    }
    if (prefix == 4 && strncmp(key, "fail", 4) == 0) {
        unsigned long long code;
        if (g->nfail == MAX_FAILS || strncmp(sub, "nvml", 4) != 0)
            return "bad fail.<nvml function>";
        if (!copy_text(g->fail[g->nfail].fn, sizeof g->fail[0].fn, sub) || !parse_u64(value, &code))
            return "bad fail.<nvml function> <code>";
        g->fail[g->nfail++].code = (int)code;
        return NULL;
    }
    if (prefix == 11 && strncmp(key, "field_types", 11) == 0) {
        unsigned long long type;
        if (g->nfield_type == MAX_FIELD_TYPES || !parse_u64(sub, &n) || n >= FI_MAX)
            return "bad field id";
        if (!parse_u64(value, &type) || type >= VT_COUNT)
            return "value type not in 0..6";
        g->field_type[g->nfield_type].field = (unsigned int)n;
        g->field_type[g->nfield_type++].type = (int)type;
        return NULL;
    }
    return "unknown key";
}

static const char *node_key(struct state *s, const char *key, const char *value)
{
    unsigned long long n;
    if (strcmp(key, "node") == 0 || strcmp(key, "preset") == 0)
        return NULL; /* for people and gpu_double.py */
    if (strcmp(key, "driver_version") == 0)
        return copy_text(s->driver_version, sizeof s->driver_version, value) ? NULL : "too long";
    if (strcmp(key, "nvml_version") == 0)
        return copy_text(s->nvml_version, sizeof s->nvml_version, value) ? NULL : "too long";
    if (strcmp(key, "cuda_driver_version") == 0) {
        if (!parse_u64(value, &n))
            return "not a number";
        s->cuda_driver_version = (int)n;
        return NULL;
    }
    if (strcmp(key, "init_error") == 0) {
        if (!parse_u64(value, &n))
            return "not a number";
        s->init_error = (int)n;
        return NULL;
    }
    if (strcmp(key, "fabric_info_versions") == 0) {
        unsigned char set[32];
        if (!parse_list(value, set, 32))
            return "not a list of versions";
        s->fabric_versions = 0;
        for (int v = 0; v < 32; v++)
            if (set[v])
                s->fabric_versions |= 1u << v;
        return NULL;
    }
    return "unknown key";
}

/* One line, without its newline; NULL or the problem. */
static const char *parse_line(struct state *s, char *line)
{
    char *key = line + strspn(line, " \t");
    if (*key == '\0' || *key == '#')
        return NULL;
    char *value = key + strcspn(key, " \t");
    if (*value != '\0')
        *value++ = '\0';
    value += strspn(value, " \t");
    if (strcmp(key, "gpu") != 0)
        return node_key(s, key, value);
    char *end;
    long index = strtol(value, &end, 10);
    if (end == value || (*end != ' ' && *end != '\t') || index < 0 || index >= MAX_GPUS)
        return "bad GPU number";
    key = end + strspn(end, " \t");
    value = key + strcspn(key, " \t");
    if (*value != '\0')
        *value++ = '\0';
    value += strspn(value, " \t");
    if (*key == '\0')
        return "missing key";
    struct gpu *g = &s->gpus[index];
    if (!g->seen) {
        gpu_defaults(g, (int)index);
        g->seen = 1;
    }
    if (index >= s->ngpus)
        s->ngpus = (int)index + 1;
    const char *problem = gpu_key(g, key, value);
    static char with_key[160];
    if (problem == NULL)
        return NULL;
    snprintf(with_key, sizeof with_key, "%s: %s", key, problem);
    return with_key;
}

/* Parse text (NUL-terminated, modified) into g_parse; 0 or the failing line number. */
static int parse_state(char *text, const char **problem)
{
    memset(&g_parse, 0, sizeof g_parse);
    int lineno = 0;
    char *next = text;
    while (next != NULL && *next != '\0') {
        char *line = next;
        next = strchr(line, '\n');
        if (next != NULL)
            *next++ = '\0';
        size_t n = strlen(line);
        while (n > 0 && (line[n - 1] == '\r' || line[n - 1] == ' ' || line[n - 1] == '\t'))
            line[--n] = '\0';
        lineno++;
        if (lineno == 1 && strcmp(line, STATE_HEADER) != 0) {
            *problem = "not an NVML double state file (expected \"" STATE_HEADER "\")";
            return lineno;
        }
        if ((*problem = parse_line(&g_parse, line)) != NULL)
            return lineno;
    }
    if (lineno == 0) {
        *problem = "empty file";
        return 1;
    }
    for (int i = 0; i < g_parse.ngpus; i++) {
        if (!g_parse.gpus[i].seen) {
            static char missing[64];
            snprintf(missing, sizeof missing, "gpu %d has no lines (GPUs are numbered 0..%d)", i,
                     g_parse.ngpus - 1);
            *problem = missing;
            return lineno;
        }
    }
    return 0;
}

static char *read_file(const char *path, struct stat *st, const char **why)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, st) != 0) {
        *why = strerror(errno);
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    if (st->st_size > MAX_FILE) {
        close(fd);
        *why = "too large";
        return NULL;
    }
    char *buf = malloc((size_t)st->st_size + 1);
    size_t got = 0;
    while (buf != NULL && got < (size_t)st->st_size) {
        ssize_t r = read(fd, buf + got, (size_t)st->st_size - got);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    if (buf == NULL) {
        *why = "out of memory";
        return NULL;
    }
    buf[got] = '\0';
    return buf;
}

static int same_stat(const struct stat *a, const struct stat *b)
{
    return a->st_ino == b->st_ino && a->st_dev == b->st_dev && a->st_size == b->st_size &&
           a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

/* Re-read the state file if it changed. At nvmlInit a missing or broken file answers
 * DRIVER_NOT_LOADED; later, the last good state is kept (and the problem printed). */
static nvmlReturn_t reload(int at_init)
{
    const char *path = getenv("NVML_DOUBLE_STATE");
    if (path == NULL || *path == '\0') {
        if (!at_init && g_loaded)
            return NVML_SUCCESS;
        complain(at_init, "NVML_DOUBLE_STATE is not set: no state file, no driver");
        return NVML_ERROR_DRIVER_NOT_LOADED;
    }
    struct stat st;
    if (g_loaded && strcmp(path, g_path) == 0 && stat(path, &st) == 0 && same_stat(&st, &g_stat)) {
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        if (now.tv_sec - st.st_mtim.tv_sec > 2)
            return NVML_SUCCESS; /* unchanged, and not racily so */
    }
    const char *why = NULL;
    char *text = read_file(path, &st, &why);
    if (text == NULL) {
        complain(at_init, "cannot read the state file %s: %s", path, why);
        return at_init || !g_loaded ? NVML_ERROR_DRIVER_NOT_LOADED : NVML_SUCCESS;
    }
    int bad = parse_state(text, &why);
    free(text);
    if (bad) {
        complain(at_init, "%s:%d: %s", path, bad, why);
        return at_init || !g_loaded ? NVML_ERROR_DRIVER_NOT_LOADED : NVML_SUCCESS;
    }
    memcpy(&g_live, &g_parse, sizeof g_live);
    snprintf(g_path, sizeof g_path, "%s", path);
    g_stat = st;
    g_loaded = 1;
    g_complained[0] = '\0';
    return NVML_SUCCESS;
}

/* ---------- GPUs ---------- */

static int enumerates(const struct gpu *g)
{
    return g->k[K_present].na || g->k[K_present].v != 0;
}

static int is_lost(const struct gpu *g)
{
    return !enumerates(g) || (!g->k[K_lost].na && g->k[K_lost].v != 0);
}

static unsigned int gpu_count(void)
{
    unsigned int n = 0;
    if (g_no_gpus)
        return 0;
    for (int i = 0; i < g_live.ngpus; i++)
        n += (unsigned int)enumerates(&g_live.gpus[i]);
    return n;
}

static struct gpu *gpu_at(unsigned int index)
{
    if (g_no_gpus)
        return NULL;
    for (int i = 0; i < g_live.ngpus; i++)
        if (enumerates(&g_live.gpus[i]) && index-- == 0)
            return &g_live.gpus[i];
    return NULL;
}

static struct gpu *gpu_of(nvmlDevice_t device)
{
    uintptr_t base = (uintptr_t)g_live.gpus, p = (uintptr_t)device;
    if (p < base || (p - base) % sizeof(struct gpu) != 0)
        return NULL;
    size_t i = (p - base) / sizeof(struct gpu);
    return i < (size_t)g_live.ngpus ? &g_live.gpus[i] : NULL;
}

static int injected(const struct gpu *g, const char *fn)
{
    for (int i = 0; i < g->nfail; i++)
        if (strcmp(g->fail[i].fn, fn) == 0)
            return g->fail[i].code;
    return 0;
}

static nvmlReturn_t enter(nvmlDevice_t device, const char *fn, int identity, struct gpu **out)
{
    if (g_refs == 0)
        return NVML_ERROR_UNINITIALIZED;
    struct gpu *g = gpu_of(device);
    if (g == NULL)
        return NVML_ERROR_INVALID_ARGUMENT;
    int code = injected(g, fn);
    if (code != 0)
        return code;
    if (!identity && is_lost(g))
        return NVML_ERROR_GPU_IS_LOST;
    *out = g;
    return NVML_SUCCESS;
}

/* The body of a device call: BEGIN(device, identity) ... RETURN(rc) ... END */
#define BEGIN(device, identity)                                                          \
    struct gpu *g = NULL;                                                                \
    nvmlReturn_t rc_;                                                                    \
    pthread_mutex_lock(&g_mu);                                                           \
    rc_ = enter((device), __func__, (identity), &g);                                     \
    if (rc_ != NVML_SUCCESS)                                                             \
        goto out_;                                                                       \
    (void)g
#define RETURN(x)                                                                        \
    do {                                                                                 \
        rc_ = (x);                                                                       \
        goto out_;                                                                       \
    } while (0)
#define END                                                                              \
    out_:                                                                                \
    pthread_mutex_unlock(&g_mu);                                                         \
    return rc_

/* The many calls that answer one value of the GPU's state (NA: NOT_SUPPORTED). */
#define GETTER(name, type, out_fn, key)                                                  \
    API nvmlReturn_t name(nvmlDevice_t device, type *value)                              \
    {                                                                                    \
        BEGIN(device, 0);                                                                \
        RETURN(out_fn(g, key, value));                                                   \
        END;                                                                             \
    }
#define GETTER_UINT(name, key) GETTER(name, unsigned int, out_uint, key)
#define GETTER_ULL(name, key) GETTER(name, unsigned long long, out_ull, key)

static nvmlReturn_t out_uint(const struct gpu *g, enum key k, unsigned int *out)
{
    if (out == NULL)
        return NVML_ERROR_INVALID_ARGUMENT;
    if (g->k[k].na)
        return NVML_ERROR_NOT_SUPPORTED;
    *out = (unsigned int)g->k[k].v;
    return NVML_SUCCESS;
}

static nvmlReturn_t out_ull(const struct gpu *g, enum key k, unsigned long long *out)
{
    if (out == NULL)
        return NVML_ERROR_INVALID_ARGUMENT;
    if (g->k[k].na)
        return NVML_ERROR_NOT_SUPPORTED;
    *out = g->k[k].v;
    return NVML_SUCCESS;
}

static nvmlReturn_t out_text(char *dst, unsigned int length, const char *src)
{
    if (dst == NULL)
        return NVML_ERROR_INVALID_ARGUMENT;
    size_t n = strlen(src);
    if (length < n + 1)
        return NVML_ERROR_INSUFFICIENT_SIZE;
    memcpy(dst, src, n + 1);
    return NVML_SUCCESS;
}

/* ---------- init, shutdown, errors, system ---------- */

API const char *nvml_double_build(void)
{
#ifdef NVML_DOUBLE_R535
    return "r535";
#else
    return "latest";
#endif
}

API nvmlReturn_t nvmlInitWithFlags(unsigned int flags)
{
    pthread_mutex_lock(&g_mu);
    nvmlReturn_t rc = reload(1);
    if (rc == NVML_SUCCESS && g_live.init_error != 0)
        rc = g_live.init_error;
    if (rc == NVML_SUCCESS) {
        if (g_refs++ == 0)
            g_no_gpus = (flags & 1u) != 0; /* NVML_INIT_FLAG_NO_GPUS */
    }
    pthread_mutex_unlock(&g_mu);
    return rc;
}

API nvmlReturn_t nvmlInit_v2(void) { return nvmlInitWithFlags(0); }
API nvmlReturn_t nvmlInit(void) { return nvmlInitWithFlags(0); }

API nvmlReturn_t nvmlShutdown(void)
{
    pthread_mutex_lock(&g_mu);
    nvmlReturn_t rc = g_refs > 0 ? NVML_SUCCESS : NVML_ERROR_UNINITIALIZED;
    if (g_refs > 0 && --g_refs == 0)
        g_no_gpus = 0;
    pthread_mutex_unlock(&g_mu);
    return rc;
}

API const char *nvmlErrorString(nvmlReturn_t result)
{
    /* NVML's texts as pynvml copies them; 19 as nvidia-smi prints it; 21..30 (unverified) */
    switch (result) {
    case 0: return "Success";
    case 1: return "Uninitialized";
    case 2: return "Invalid Argument";
    case 3: return "Not Supported";
    case 4: return "Insufficient Permissions";
    case 5: return "Already Initialized";
    case 6: return "Not Found";
    case 7: return "Insufficient Size";
    case 8: return "Insufficient External Power";
    case 9: return "Driver Not Loaded";
    case 10: return "Timeout";
    case 11: return "Interrupt Request Issue";
    case 12: return "NVML Shared Library Not Found";
    case 13: return "Function Not Found";
    case 14: return "Corrupted infoROM";
    case 15: return "GPU is lost";
    case 16: return "GPU requires restart";
    case 17: return "The operating system has blocked the request.";
    case 18: return "RM has detected an NVML/RM version mismatch.";
    case 19: return "In use by another client";
    case 20: return "Insufficient Memory";
    case 21: return "No data";
    case 23: return "Insufficient Resources";
    case 25: return "Argument version mismatch";
    case 26: return "Deprecated";
    case 27: return "Not Ready";
    case 28: return "GPU not found";
    case 29: return "Invalid state";
    case 30: return "Reset type not supported";
    case 999: return "Unknown Error";
    default: return "Unknown Error";
    }
}

static nvmlReturn_t system_text(const char *which, char *out, unsigned int length)
{
    pthread_mutex_lock(&g_mu);
    nvmlReturn_t rc = g_refs == 0 ? NVML_ERROR_UNINITIALIZED : out_text(out, length, which);
    pthread_mutex_unlock(&g_mu);
    return rc;
}

API nvmlReturn_t nvmlSystemGetDriverVersion(char *version, unsigned int length)
{
    return system_text(g_live.driver_version, version, length);
}

API nvmlReturn_t nvmlSystemGetNVMLVersion(char *version, unsigned int length)
{
    return system_text(g_live.nvml_version, version, length);
}

static nvmlReturn_t cuda_version(int *version)
{
    pthread_mutex_lock(&g_mu);
    nvmlReturn_t rc = NVML_SUCCESS;
    if (version == NULL)
        rc = NVML_ERROR_INVALID_ARGUMENT;
    else if (g_refs == 0)
        rc = NVML_ERROR_UNINITIALIZED;
    else
        *version = g_live.cuda_driver_version;
    pthread_mutex_unlock(&g_mu);
    return rc;
}

API nvmlReturn_t nvmlSystemGetCudaDriverVersion(int *v) { return cuda_version(v); }
API nvmlReturn_t nvmlSystemGetCudaDriverVersion_v2(int *v) { return cuda_version(v); }

/* ---------- enumeration and handles ---------- */

static nvmlReturn_t device_count(unsigned int *count)
{
    pthread_mutex_lock(&g_mu);
    nvmlReturn_t rc = NVML_SUCCESS;
    if (g_refs == 0)
        rc = NVML_ERROR_UNINITIALIZED;
    else if (count == NULL)
        rc = NVML_ERROR_INVALID_ARGUMENT;
    else {
        reload(0);
        *count = gpu_count();
    }
    pthread_mutex_unlock(&g_mu);
    return rc;
}

API nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *count) { return device_count(count); }
API nvmlReturn_t nvmlDeviceGetCount(unsigned int *count) { return device_count(count); }

static nvmlReturn_t handle_by_index(const char *fn, unsigned int index, nvmlDevice_t *device)
{
    pthread_mutex_lock(&g_mu);
    nvmlReturn_t rc = NVML_SUCCESS;
    struct gpu *g = NULL;
    if (g_refs == 0)
        rc = NVML_ERROR_UNINITIALIZED;
    else if (device == NULL)
        rc = NVML_ERROR_INVALID_ARGUMENT;
    else {
        reload(0);
        g = gpu_at(index);
        if (g == NULL)
            rc = NVML_ERROR_INVALID_ARGUMENT;
        else if ((rc = injected(g, fn)) == 0)
            *device = g;
    }
    pthread_mutex_unlock(&g_mu);
    return rc;
}

API nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t *device)
{
    return handle_by_index(__func__, index, device);
}

API nvmlReturn_t nvmlDeviceGetHandleByIndex(unsigned int index, nvmlDevice_t *device)
{
    return handle_by_index(__func__, index, device);
}

API nvmlReturn_t nvmlDeviceGetHandleByUUID(const char *uuid, nvmlDevice_t *device)
{
    pthread_mutex_lock(&g_mu);
    nvmlReturn_t rc = NVML_ERROR_NOT_FOUND;
    if (g_refs == 0)
        rc = NVML_ERROR_UNINITIALIZED;
    else if (uuid == NULL || device == NULL)
        rc = NVML_ERROR_INVALID_ARGUMENT;
    else
        for (int i = 0; i < g_live.ngpus && rc == NVML_ERROR_NOT_FOUND; i++)
            if (enumerates(&g_live.gpus[i]) && strcasecmp(uuid, g_live.gpus[i].uuid) == 0) {
                *device = &g_live.gpus[i];
                rc = NVML_SUCCESS;
            }
    pthread_mutex_unlock(&g_mu);
    return rc;
}

static nvmlReturn_t handle_by_bus_id(const char *bus_id, nvmlDevice_t *device)
{
    unsigned int domain, bus, dev;
    pthread_mutex_lock(&g_mu);
    nvmlReturn_t rc = NVML_ERROR_NOT_FOUND;
    if (g_refs == 0)
        rc = NVML_ERROR_UNINITIALIZED;
    else if (bus_id == NULL || device == NULL || !parse_bus_id(bus_id, &domain, &bus, &dev))
        rc = NVML_ERROR_INVALID_ARGUMENT;
    else
        for (int i = 0; i < g_live.ngpus && rc == NVML_ERROR_NOT_FOUND; i++) {
            struct gpu *g = &g_live.gpus[i];
            if (enumerates(g) && g->has_bus && g->domain == domain && g->bus == bus &&
                g->device == dev) {
                *device = g;
                rc = NVML_SUCCESS;
            }
        }
    pthread_mutex_unlock(&g_mu);
    return rc;
}

API nvmlReturn_t nvmlDeviceGetHandleByPciBusId_v2(const char *id, nvmlDevice_t *device)
{
    return handle_by_bus_id(id, device);
}

API nvmlReturn_t nvmlDeviceGetHandleByPciBusId(const char *id, nvmlDevice_t *device)
{
    return handle_by_bus_id(id, device);
}

/* ---------- identity ---------- */

API nvmlReturn_t nvmlDeviceGetIndex(nvmlDevice_t device, unsigned int *index)
{
    BEGIN(device, 0);
    if (index == NULL)
        RETURN(NVML_ERROR_INVALID_ARGUMENT);
    unsigned int n = 0;
    for (struct gpu *p = g_live.gpus; p < g; p++)
        n += (unsigned int)enumerates(p);
    *index = n;
    RETURN(NVML_SUCCESS);
    END;
}

GETTER_UINT(nvmlDeviceGetMinorNumber, K_minor_number)

API nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t device, char *uuid, unsigned int length)
{
    BEGIN(device, 1);
    RETURN(out_text(uuid, length, g->uuid));
    END;
}

API nvmlReturn_t nvmlDeviceGetSerial(nvmlDevice_t device, char *serial, unsigned int length)
{
    BEGIN(device, 1);
    RETURN(out_text(serial, length, g->serial));
    END;
}

API nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t device, char *name, unsigned int length)
{
    BEGIN(device, 1);
    RETURN(out_text(name, length, g->name));
    END;
}

static void fill_pci(const struct gpu *g, nvmlPciInfo_t *pci)
{
    memset(pci, 0, sizeof *pci);
    pci->domain = g->domain;
    pci->bus = g->bus;
    pci->device = g->device;
    pci->pciDeviceId = (unsigned int)g->k[K_pci_device_id].v;
    pci->pciSubSystemId = (unsigned int)g->k[K_pci_subsystem_id].v;
    snprintf(pci->busIdLegacy, sizeof pci->busIdLegacy, "%04X:%02X:%02X.0", g->domain & 0xffff,
             g->bus, g->device);
    snprintf(pci->busId, sizeof pci->busId, "%08X:%02X:%02X.0", g->domain, g->bus, g->device);
}

API nvmlReturn_t nvmlDeviceGetPciInfo_v3(nvmlDevice_t device, nvmlPciInfo_t *pci)
{
    BEGIN(device, 1);
    if (pci == NULL)
        RETURN(NVML_ERROR_INVALID_ARGUMENT);
    if (!g->has_bus)
        RETURN(NVML_ERROR_NOT_SUPPORTED);
    check_struct(__func__, pci, sizeof *pci);
    fill_pci(g, pci);
    RETURN(NVML_SUCCESS);
    END;
}

API nvmlReturn_t nvmlDeviceGetPersistenceMode(nvmlDevice_t device, nvmlEnableState_t *mode)
{
    BEGIN(device, 0);
    RETURN(out_uint(g, K_persistence_mode, (unsigned int *)mode));
    END;
}

static nvmlReturn_t memory_mib(const struct gpu *g, unsigned long long *total,
                               unsigned long long *reserved, unsigned long long *used)
{
    if (g->k[K_memory_total_mib].na)
        return NVML_ERROR_NOT_SUPPORTED;
    const unsigned long long mib = 1ull << 20;
    *total = g->k[K_memory_total_mib].v * mib;
    *reserved = g->k[K_memory_reserved_mib].na ? 0 : g->k[K_memory_reserved_mib].v * mib;
    *used = g->k[K_memory_used_mib].na ? 0 : g->k[K_memory_used_mib].v * mib;
    if (*reserved + *used > *total)
        *used = *total - *reserved;
    return NVML_SUCCESS;
}

API nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t device, nvmlMemory_t *memory)
{
    unsigned long long total, reserved, used;
    BEGIN(device, 0);
    if (memory == NULL)
        RETURN(NVML_ERROR_INVALID_ARGUMENT);
    if (memory_mib(g, &total, &reserved, &used) != NVML_SUCCESS)
        RETURN(NVML_ERROR_NOT_SUPPORTED);
    check_struct(__func__, memory, sizeof *memory);
    memory->total = total;
    memory->used = used + reserved; /* v1 counts the reserved memory as used */
    memory->free = total - used - reserved;
    RETURN(NVML_SUCCESS);
    END;
}

API nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t device, nvmlMemory_v2_t *memory)
{
    unsigned long long total, reserved, used;
    BEGIN(device, 0);
    if (memory == NULL)
        RETURN(NVML_ERROR_INVALID_ARGUMENT);
    check_struct(__func__, memory, sizeof memory->version);
    if (memory->version != NVML_MEMORY_V2)
        RETURN(NVML_ERROR_ARGUMENT_VERSION_MISMATCH);
    if (memory_mib(g, &total, &reserved, &used) != NVML_SUCCESS)
        RETURN(NVML_ERROR_NOT_SUPPORTED);
    check_struct(__func__, memory, sizeof *memory);
    memory->total = total;
    memory->reserved = reserved;
    memory->used = used;
    memory->free = total - used - reserved;
    RETURN(NVML_SUCCESS);
    END;
}

/* ---------- temperature, utilization, power ---------- */

API nvmlReturn_t nvmlDeviceGetTemperature(nvmlDevice_t device, int sensor, unsigned int *temp)
{
    BEGIN(device, 0);
    if (sensor < 0 || sensor > 1 || temp == NULL)
        RETURN(NVML_ERROR_INVALID_ARGUMENT);
    if (sensor != 0) /* NVML_TEMPERATURE_GPU is the only sensor modelled */
        RETURN(NVML_ERROR_NOT_SUPPORTED);
    RETURN(out_uint(g, K_temperature_c, temp));
    END;
}

API nvmlReturn_t nvmlDeviceGetTemperatureV(nvmlDevice_t device, nvmlTemperature_v1_t *temp)
{
    BEGIN(device, 0);
    if (temp == NULL)
        RETURN(NVML_ERROR_INVALID_ARGUMENT);
    check_struct(__func__, temp, sizeof *temp);
    if (temp->version != NVML_TEMPERATURE_V1)
        RETURN(NVML_ERROR_ARGUMENT_VERSION_MISMATCH);
    if (temp->sensorType < 0 || temp->sensorType > 1)
        RETURN(NVML_ERROR_INVALID_ARGUMENT);
    if (temp->sensorType != 0 || g->k[K_temperature_c].na)
        RETURN(NVML_ERROR_NOT_SUPPORTED);
    temp->temperature = (int)g->k[K_temperature_c].v;
    RETURN(NVML_SUCCESS);
    END;
}

API nvmlReturn_t nvmlDeviceGetTemperatureThreshold(nvmlDevice_t device, int type,
                                                   unsigned int *temp)
{
    static const enum key keys[] = {K_temp_shutdown_c, K_temp_slowdown_c, K_temp_mem_max_c,
                                    K_temp_gpu_max_c};
    BEGIN(device, 0);
    if (type < 0 || type >= 8 || temp == NULL) /* NVML_TEMPERATURE_THRESHOLD_COUNT */
        RETURN(NVML_ERROR_INVALID_ARGUMENT);
    if (type >= 4) /* acoustic and GPS thresholds: not on datacenter GPUs */
        RETURN(NVML_ERROR_NOT_SUPPORTED);
    RETURN(out_uint(g, keys[type], temp));
    END;
}

API nvmlReturn_t nvmlDeviceGetUtilizationRates(nvmlDevice_t device, nvmlUtilization_t *util)
{
    BEGIN(device, 0);
    if (util == NULL)
        RETURN(NVML_ERROR_INVALID_ARGUMENT);
    if (g->k[K_utilization_pct].na)
        RETURN(NVML_ERROR_NOT_SUPPORTED);
    check_struct(__func__, util, sizeof *util);
    util->gpu = (unsigned int)g->k[K_utilization_pct].v;
    util->memory = g->k[K_memory_utilization_pct].na ? 0 : (unsigned int)g->k[K_memory_utilization_pct].v;
    RETURN(NVML_SUCCESS);
    END;
}

GETTER_UINT(nvmlDeviceGetPowerUsage, K_power_mw)

GETTER_UINT(nvmlDeviceGetEnforcedPowerLimit, K_power_limit_mw)

/* ---------- ECC, row remapping, page retirement ---------- */

static int ecc_on(const struct gpu *g)
{
    return !g->k[K_ecc_enabled].na && g->k[K_ecc_enabled].v != 0;
}

API nvmlReturn_t nvmlDeviceGetEccMode(nvmlDevice_t device, nvmlEnableState_t *current,
                                      nvmlEnableState_t *pending)
{
    BEGIN(device, 0);
    if (current == NULL || pending == NULL)
        RETURN(NVML_ERROR_INVALID_ARGUMENT);
    if (g->k[K_ecc_enabled].na || g->k[K_ecc_pending_enabled].na)
        RETURN(NVML_ERROR_NOT_SUPPORTED);
    *current = g->k[K_ecc_enabled].v != 0;
    *pending = g->k[K_ecc_pending_enabled].v != 0;
    RETURN(NVML_SUCCESS);
    END;
}

/* The key of one ECC counter: error type (0 corrected, 1 uncorrected), counter type
 * (0 volatile, 1 aggregate), location (0 DRAM, 1 SRAM). */
static enum key ecc_key(int error, int counter, int sram)
{
    static const enum key keys[2][2][2] = {
        {{K_ecc_volatile_corrected_dram, K_ecc_volatile_corrected_sram},
         {K_ecc_aggregate_corrected_dram, K_ecc_aggregate_corrected_sram}},
        {{K_ecc_volatile_uncorrected_dram, K_ecc_volatile_uncorrected_sram},
         {K_ecc_aggregate_uncorrected_dram, K_ecc_aggregate_uncorrected_sram}},
    };
    return keys[error][counter][sram];
}

API nvmlReturn_t nvmlDeviceGetTotalEccErrors(nvmlDevice_t device, int error, int counter,
                                             unsigned long long *count)
{
    BEGIN(device, 0);
    if (error < 0 || error > 1 || counter < 0 || counter > 1 || count == NULL)
        RETURN(NVML_ERROR_INVALID_ARGUMENT);
    const struct num *dram = &g->k[ecc_key(error, counter, 0)];
    const struct num *sram = &g->k[ecc_key(error, counter, 1)];
    if (!ecc_on(g) || (dram->na && sram->na))
        RETURN(NVML_ERROR_NOT_SUPPORTED);
    *count = (dram->na ? 0 : dram->v) + (sram->na ? 0 : sram->v);
    RETURN(NVML_SUCCESS);
    END;
}

API nvmlReturn_t nvmlDeviceGetMemoryErrorCounter(nvmlDevice_t device, int error, int counter,
                                                 int location, unsigned long long *count)
{
    BEGIN(device, 0);
    if (error < 0 || error > 1 || counter < 0 || counter > 1 || location < 0 || location >= 8 ||
        count == NULL) /* NVML_MEMORY_LOCATION_COUNT */
        RETURN(NVML_ERROR_INVALID_ARGUMENT);
    /* Hopper counts DRAM (2, NVML_MEMORY_LOCATION_DRAM/DEVICE_MEMORY) and SRAM (7) only */
    if (!ecc_on(g) || (location != 2 && location != 7))
        RETURN(NVML_ERROR_NOT_SUPPORTED);
    RETURN(out_ull(g, ecc_key(error, counter, location == 7), count));
    END;
}

#ifndef NVML_DOUBLE_R535
API nvmlReturn_t nvmlDeviceGetSramEccErrorStatus(nvmlDevice_t device,
                                                 nvmlEccSramErrorStatus_v1_t *status)
{
    BEGIN(device, 0);
    if (status == NULL)
        RETURN(NVML_ERROR_INVALID_ARGUMENT);
    check_struct(__func__, status, sizeof status->version);
    if (status->version != NVML_ECC_SRAM_ERROR_STATUS_V1)
        RETURN(NVML_ERROR_ARGUMENT_VERSION_MISMATCH);
    if (g->k[K_sram_threshold_exceeded].na || !ecc_on(g))
        RETURN(NVML_ERROR_NOT_SUPPORTED);
    check_struct(__func__, status, sizeof *status);
#define SRAM(key) (g->k[K_##key].na ? 0 : g->k[K_##key].v)
    nvmlEccSramErrorStatus_v1_t s = {
        .version = status->version,
        .aggregateUncSecDed = SRAM(ecc_aggregate_uncorrected_sram),
        .aggregateCor = SRAM(ecc_aggregate_corrected_sram),
        .volatileUncSecDed = SRAM(ecc_volatile_uncorrected_sram),
        .volatileCor = SRAM(ecc_volatile_corrected_sram),
        .aggregateUncBucketOther = SRAM(ecc_aggregate_uncorrected_sram),
        .bThresholdExceeded = g->k[K_sram_threshold_exceeded].v != 0,
    };
#undef SRAM
    memcpy(status, &s, sizeof s);
    RETURN(NVML_SUCCESS);
    END;
}
#endif

API nvmlReturn_t nvmlDeviceGetRemappedRows(nvmlDevice_t device, unsigned int *corr,
                                           unsigned int *unc, unsigned int *pending,
                                           unsigned int *failure)
{
    static const enum key keys[] = {K_row_remap_correctable, K_row_remap_uncorrectable,
                                    K_row_remap_pending, K_row_remap_failure};
    unsigned int *outs[] = {corr, unc, pending, failure};
    BEGIN(device, 0);
    for (int i = 0; i < 4; i++)
        if (outs[i] == NULL)
            RETURN(NVML_ERROR_INVALID_ARGUMENT);
    for (int i = 0; i < 4; i++)
        if (g->k[keys[i]].na)
            RETURN(NVML_ERROR_NOT_SUPPORTED);
    for (int i = 0; i < 4; i++)
        *outs[i] = (unsigned int)g->k[keys[i]].v;
    RETURN(NVML_SUCCESS);
    END;
}

static nvmlReturn_t retired_pages(const struct gpu *g, int cause, unsigned int *count,
                                  unsigned long long *addresses, unsigned long long *times)
{
    if (cause < 0 || cause > 1 || count == NULL)
        return NVML_ERROR_INVALID_ARGUMENT;
    const struct num *n = &g->k[cause == 0 ? K_retired_pages_sbe : K_retired_pages_dbe];
    if (n->na)
        return NVML_ERROR_NOT_SUPPORTED;
    unsigned int have = (unsigned int)n->v;
    if (addresses == NULL || *count < have) { /* a size query, or too small an array */
        *count = have;
        return have == 0 ? NVML_SUCCESS : NVML_ERROR_INSUFFICIENT_SIZE;
    }
    for (unsigned int i = 0; i < have; i++) {
        /* made-up page addresses, distinct per GPU, cause and page */
        addresses[i] = 0x100000ull + ((unsigned long long)g->slot << 20) +
                       ((unsigned long long)cause << 16) + i;
        if (times != NULL)
            times[i] = 1700000000ull + i;
    }
    *count = have;
    return NVML_SUCCESS;
}

API nvmlReturn_t nvmlDeviceGetRetiredPages(nvmlDevice_t device, int cause, unsigned int *count,
                                           unsigned long long *addresses)
{
    BEGIN(device, 0);
    RETURN(retired_pages(g, cause, count, addresses, NULL));
    END;
}

API nvmlReturn_t nvmlDeviceGetRetiredPages_v2(nvmlDevice_t device, int cause,
                                              unsigned int *count, unsigned long long *addresses,
                                              unsigned long long *timestamps)
{
    BEGIN(device, 0);
    RETURN(retired_pages(g, cause, count, addresses, timestamps));
    END;
}

API nvmlReturn_t nvmlDeviceGetRetiredPagesPendingStatus(nvmlDevice_t device,
                                                        nvmlEnableState_t *pending)
{
    BEGIN(device, 0);
    RETURN(out_uint(g, K_retired_pages_pending, (unsigned int *)pending));
    END;
}

/* ---------- clock events ---------- */

GETTER_ULL(nvmlDeviceGetCurrentClocksEventReasons, K_clock_event_reasons)

GETTER_ULL(nvmlDeviceGetCurrentClocksThrottleReasons, K_clock_event_reasons)

GETTER_ULL(nvmlDeviceGetSupportedClocksEventReasons, K_clock_event_reasons_supported)

GETTER_ULL(nvmlDeviceGetSupportedClocksThrottleReasons, K_clock_event_reasons_supported)

/* ---------- PCIe ---------- */

GETTER_UINT(nvmlDeviceGetCurrPcieLinkGeneration, K_pcie_gen)

GETTER_UINT(nvmlDeviceGetMaxPcieLinkGeneration, K_pcie_gen_max)

GETTER_UINT(nvmlDeviceGetGpuMaxPcieLinkGeneration, K_pcie_gen_max)

GETTER_UINT(nvmlDeviceGetCurrPcieLinkWidth, K_pcie_width)

GETTER_UINT(nvmlDeviceGetMaxPcieLinkWidth, K_pcie_width_max)

GETTER_UINT(nvmlDeviceGetPcieReplayCounter, K_pcie_replays)

/* ---------- NVLink ---------- */

static nvmlReturn_t link_ok(const struct gpu *g, unsigned int link)
{
    unsigned long long links = g->k[K_nvlink_links].na ? 0 : g->k[K_nvlink_links].v;
    if (links == 0)
        return NVML_ERROR_NOT_SUPPORTED;
    return link < links && link < MAX_LINKS ? NVML_SUCCESS : NVML_ERROR_INVALID_ARGUMENT;
}

API nvmlReturn_t nvmlDeviceGetNvLinkState(nvmlDevice_t device, unsigned int link,
                                          nvmlEnableState_t *active)
{
    BEGIN(device, 0);
    if (active == NULL)
        RETURN(NVML_ERROR_INVALID_ARGUMENT);
    nvmlReturn_t rc = link_ok(g, link);
    if (rc == NVML_SUCCESS)
        *active = !g->link_down[link];
    RETURN(rc);
    END;
}

API nvmlReturn_t nvmlDeviceGetNvLinkErrorCounter(nvmlDevice_t device, unsigned int link,
                                                 int counter, unsigned long long *value)
{
    BEGIN(device, 0);
    if (value == NULL || counter < 0 || counter > 4) /* DL_REPLAY .. DL_ECC_DATA */
        RETURN(NVML_ERROR_INVALID_ARGUMENT);
    nvmlReturn_t rc = link_ok(g, link);
    if (rc == NVML_SUCCESS)
        *value = counter < N_LINK_COUNTERS ? g->link_counter[counter][link] : 0;
    RETURN(rc);
    END;
}

/* ---------- fabric ---------- */

API nvmlReturn_t nvmlDeviceGetGpuFabricInfo(nvmlDevice_t device, nvmlGpuFabricInfo_t *info)
{
    BEGIN(device, 0);
    if (info == NULL)
        RETURN(NVML_ERROR_INVALID_ARGUMENT);
    if (g->k[K_fabric_state].na)
        RETURN(NVML_ERROR_NOT_SUPPORTED);
    check_struct(__func__, info, sizeof *info);
    nvmlGpuFabricInfo_t out;
    memset(&out, 0, sizeof out);
    memcpy(out.clusterUuid, g->cluster_uuid, 16);
    out.status = g->k[K_fabric_status].na ? NVML_SUCCESS : (nvmlReturn_t)g->k[K_fabric_status].v;
    out.cliqueId = (unsigned int)g->k[K_fabric_clique_id].v;
    out.state = (unsigned char)g->k[K_fabric_state].v;
    memcpy(info, &out, sizeof out);
    RETURN(NVML_SUCCESS);
    END;
}

#ifndef NVML_DOUBLE_R535
API nvmlReturn_t nvmlDeviceGetGpuFabricInfoV(nvmlDevice_t device, nvmlGpuFabricInfo_v3_t *info)
{
    BEGIN(device, 0);
    if (info == NULL)
        RETURN(NVML_ERROR_INVALID_ARGUMENT);
    check_struct(__func__, info, sizeof info->version);
    unsigned int version = info->version, v = version >> 24;
    int known = version == NVML_GPU_FABRIC_INFO_V2 || version == NVML_GPU_FABRIC_INFO_V3;
    if (!known || v >= 32 || !(g_live.fabric_versions & (1u << v)))
        RETURN(NVML_ERROR_ARGUMENT_VERSION_MISMATCH);
    if (g->k[K_fabric_state].na)
        RETURN(NVML_ERROR_NOT_SUPPORTED);
    size_t size = version & 0xffffff;
    check_struct(__func__, info, size);
    nvmlGpuFabricInfo_v3_t out;
    memset(&out, 0, sizeof out);
    out.version = version;
    memcpy(out.clusterUuid, g->cluster_uuid, 16);
    out.status = g->k[K_fabric_status].na ? NVML_SUCCESS : (nvmlReturn_t)g->k[K_fabric_status].v;
    out.cliqueId = (unsigned int)g->k[K_fabric_clique_id].v;
    out.state = (unsigned char)g->k[K_fabric_state].v;
    out.healthMask = (unsigned int)g->k[K_fabric_health_mask].v;
    out.healthSummary = (unsigned char)g->k[K_fabric_health_summary].v;
    memcpy(info, &out, size); /* only the bytes of the version asked for */
    RETURN(NVML_SUCCESS);
    END;
}
#endif

/* ---------- field values ---------- */

static void put_value(nvmlFieldValue_t *fv, int type, unsigned long long v)
{
    memset(&fv->value, 0, sizeof fv->value);
    fv->valueType = type;
    switch (type) {
    case VT_DOUBLE: fv->value.dVal = (double)v; break;
    case VT_UINT: fv->value.uiVal = (unsigned int)v; break;
    case VT_ULONG: fv->value.ulVal = (unsigned long)v; break;
    case VT_ULONGLONG: fv->value.ullVal = v; break;
    case VT_SLONGLONG: fv->value.sllVal = (signed long long)v; break;
    case VT_SINT: fv->value.siVal = (int)v; break;
    default: fv->value.usVal = (unsigned short)v; break;
    }
}

static void field_value(const struct gpu *g, nvmlFieldValue_t *fv, long long now_us)
{
    enum key k;
    int type = VT_ULONGLONG;
    fv->timestamp = now_us;
    fv->latencyUsec = 0;
    switch (fv->fieldId) {
    case FI_MEMORY_TEMP: k = K_memory_temperature_c, type = VT_UINT; break;
    case FI_PERF_POLICY_POWER: k = K_clock_counter_sw_power_cap_ns; break;
    case FI_PERF_POLICY_SYNC_BOOST: k = K_clock_counter_sync_boost_ns; break;
    case FI_CLOCKS_EVENT_SW_THERMAL: k = K_clock_counter_sw_thermal_ns; break;
    case FI_CLOCKS_EVENT_HW_THERMAL: k = K_clock_counter_hw_thermal_ns; break;
    case FI_CLOCKS_EVENT_HW_POWER_BRAKE: k = K_clock_counter_hw_power_brake_ns; break;
    case FI_GPU_RECOVERY_ACTION: k = K_recovery_action, type = VT_UINT; break;
    default:
        fv->nvmlReturn =
            fv->fieldId < FI_MAX ? NVML_ERROR_NOT_SUPPORTED : NVML_ERROR_INVALID_ARGUMENT;
        return;
    }
    for (int i = 0; i < g->nfield_type; i++)
        if (g->field_type[i].field == fv->fieldId)
            type = g->field_type[i].type;
#ifdef NVML_DOUBLE_R535
    if (fv->fieldId == FI_GPU_RECOVERY_ACTION) { /* first in NVML 12.8 */
        fv->nvmlReturn = NVML_ERROR_NOT_SUPPORTED;
        return;
    }
#endif
    fv->nvmlReturn = g->k[k].na ? NVML_ERROR_NOT_SUPPORTED : NVML_SUCCESS;
    put_value(fv, type, g->k[k].na ? 0 : g->k[k].v);
}

API nvmlReturn_t nvmlDeviceGetFieldValues(nvmlDevice_t device, int count, nvmlFieldValue_t *values)
{
    BEGIN(device, 0);
    if (values == NULL || count <= 0)
        RETURN(NVML_ERROR_INVALID_ARGUMENT);
    check_struct(__func__, values, (size_t)count * sizeof *values);
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    long long now_us = (long long)now.tv_sec * 1000000 + now.tv_nsec / 1000;
    for (int i = 0; i < count; i++)
        field_value(g, &values[i], now_us);
    RETURN(NVML_SUCCESS);
    END;
}
