/* classify.c - protocol classification of flows with nDPI (4.2 API): which flows are mail, and their risks. */
#include "flow/classify.h"

#include <ndpi/ndpi_api.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct mx_classifier {
    struct ndpi_detection_module_struct *ndpi;
};

size_t mx_classify_flow_bytes(void)
{
    return SIZEOF_FLOW_STRUCT;
}

/* nDPI's set-up and tear-down write process-wide state (its DGA tables,
 * libgcrypt's set-up, a patricia-tree counter): one engine at a time. */
static pthread_mutex_t ndpi_setup = PTHREAD_MUTEX_INITIALIZER;

struct mx_classifier *mx_classifier_new(void)
{
    struct mx_classifier *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    pthread_mutex_lock(&ndpi_setup);
    c->ndpi = ndpi_init_detection_module(ndpi_no_prefs);
    if (c->ndpi) {
        NDPI_PROTOCOL_BITMASK all;
        NDPI_BITMASK_SET_ALL(all);
        ndpi_set_protocol_detection_bitmask2(c->ndpi, &all);
        ndpi_finalize_initialization(c->ndpi);
    }
    pthread_mutex_unlock(&ndpi_setup);
    if (!c->ndpi) {
        free(c);
        return NULL;
    }
    return c;
}

void mx_classifier_free(struct mx_classifier *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&ndpi_setup);
    ndpi_exit_detection_module(c->ndpi);
    pthread_mutex_unlock(&ndpi_setup);
    free(c);
}

static void release(struct mx_classify_flow *cf)
{
    if (cf->nf) {
        struct ndpi_flow_struct *nf = cf->nf;
        cf->risk = nf->risk;
        ndpi_free_flow(nf);
        cf->nf = NULL;
    }
    cf->done = true;
}

bool mx_classify_packet(struct mx_classifier *c, struct mx_classify_flow *cf, struct mx_slice l3, mx_time_t ts,
                        uint32_t max_pkts)
{
    if (cf->done)
        return true;
    if (!cf->nf) {
        cf->nf = ndpi_flow_malloc(SIZEOF_FLOW_STRUCT);
        if (!cf->nf) {
            cf->done = true;
            return false;
        }
        memset(cf->nf, 0, SIZEOF_FLOW_STRUCT);
    }
    struct ndpi_flow_struct *nf = cf->nf;
    uint16_t len = l3.len > 65535 ? 65535 : (uint16_t)l3.len;
    ndpi_protocol p = ndpi_detection_process_packet(c->ndpi, nf, l3.ptr, len, (uint64_t)(ts / 1000000));
    cf->pkts++;
    cf->master = p.master_protocol;
    cf->app = p.app_protocol;
    cf->risk = nf->risk;
    bool known = p.app_protocol != NDPI_PROTOCOL_UNKNOWN || p.master_protocol != NDPI_PROTOCOL_UNKNOWN;
    if ((known && !ndpi_extra_dissection_possible(c->ndpi, nf)) || cf->pkts >= max_pkts) {
        if (!known)
            mx_classify_finish(c, cf);
        else
            release(cf);
    }
    return cf->done;
}

void mx_classify_finish(struct mx_classifier *c, struct mx_classify_flow *cf)
{
    if (cf->done)
        return;
    if (cf->nf && cf->master == NDPI_PROTOCOL_UNKNOWN && cf->app == NDPI_PROTOCOL_UNKNOWN) {
        uint8_t guessed = 0;
        ndpi_protocol p = ndpi_detection_giveup(c->ndpi, cf->nf, 1, &guessed);
        cf->master = p.master_protocol;
        cf->app = p.app_protocol;
    }
    release(cf);
}

void mx_classify_name(struct mx_classifier *c, const struct mx_classify_flow *cf, char *buf, size_t cap)
{
    if (!cap)
        return;
    buf[0] = 0;
    if (!cf->pkts)
        return;
    ndpi_protocol p = { cf->master, cf->app, NDPI_PROTOCOL_CATEGORY_UNSPECIFIED };
    ndpi_protocol2name(c->ndpi, p, buf, (u_int)cap);
}

void mx_classify_describe(struct mx_classifier *c, const struct mx_classify_flow *cf, struct mx_event *ev)
{
    if (!cf->pkts)
        return;
    char name[64];
    ndpi_protocol p = { cf->master, cf->app, NDPI_PROTOCOL_CATEGORY_UNSPECIFIED };
    mx_ev_obj(ev, "ndpi");
    mx_ev_str(ev, "protocol", ndpi_protocol2name(c->ndpi, p, name, sizeof(name)));
    mx_ev_arr(ev, "risks");
    for (int r = 0; r < NDPI_MAX_RISK && r < 64; r++)
        if (r != NDPI_NO_RISK && (cf->risk & (UINT64_C(1) << r)))
            mx_ev_str(ev, NULL, ndpi_risk2str((ndpi_risk_enum)r));
    mx_ev_end(ev);
    mx_ev_end(ev);
}

const char *mx_classify_lib_version(void)
{
    return ndpi_revision();
}
