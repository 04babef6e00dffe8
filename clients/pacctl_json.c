/* pacctl_json — protobuf messages as JSON by their descriptors (pacctl_json.h). */
#include "pacctl_json.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static json_t *message_json(const ProtobufCMessage *m, const pacctl_json_view_t *view);

static json_t *scalar(const ProtobufCFieldDescriptor *f, const void *p,
                      const pacctl_json_view_t *view)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32: return json_integer(*(const int32_t *)p);
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32: return json_integer(*(const uint32_t *)p);
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64: return json_integer(*(const int64_t *)p);
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64: return json_integer((json_int_t) * (const uint64_t *)p);
    case PROTOBUF_C_TYPE_FLOAT: {
        float v = *(const float *)p;
        return isfinite(v) ? json_real(v) : json_null();
    }
    case PROTOBUF_C_TYPE_DOUBLE: {
        double v = *(const double *)p;
        return isfinite(v) ? json_real(v) : json_null();
    }
    case PROTOBUF_C_TYPE_BOOL: return json_boolean(*(const protobuf_c_boolean *)p);
    case PROTOBUF_C_TYPE_ENUM: {
        if (view && view->enums_as_numbers)
            return json_integer(*(const int *)p);
        const ProtobufCEnumDescriptor *ed = f->descriptor;
        const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value(ed, *(const int *)p);
        return ev ? json_string(ev->name) : json_integer(*(const int *)p);
    }
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(char *const *)p;
        return json_string(s ? s : "");
    }
    case PROTOBUF_C_TYPE_BYTES: {
        const ProtobufCBinaryData *b = p;
        char note[64];
        snprintf(note, sizeof note, "<%zu bytes>", b->len);
        return json_string(note);
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
        const ProtobufCMessage *m = *(ProtobufCMessage *const *)p;
        return m ? message_json(m, view) : json_null();
    }
    }
    return json_null();
}

static size_t type_size(ProtobufCType t)
{
    switch (t) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
    case PROTOBUF_C_TYPE_FLOAT: return 4;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_DOUBLE: return 8;
    case PROTOBUF_C_TYPE_BOOL: return sizeof(protobuf_c_boolean);
    case PROTOBUF_C_TYPE_ENUM: return sizeof(int);
    case PROTOBUF_C_TYPE_STRING: return sizeof(char *);
    case PROTOBUF_C_TYPE_BYTES: return sizeof(ProtobufCBinaryData);
    case PROTOBUF_C_TYPE_MESSAGE: return sizeof(ProtobufCMessage *);
    }
    return 0;
}

/* The value of field f of m: an array for a repeated field. */
static json_t *field_value(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f,
                           const pacctl_json_view_t *view)
{
    const char *base = (const char *)m;
    if (f->label != PROTOBUF_C_LABEL_REPEATED)
        return scalar(f, base + f->offset, view);
    size_t n = *(const size_t *)(base + f->quantifier_offset);
    const char *arr = *(char *const *)(base + f->offset);
    json_t *a = json_array();
    for (size_t k = 0; k < n && arr; k++)
        json_array_append_new(a, scalar(f, arr + k * type_size(f->type), view));
    return a;
}

static const ProtobufCFieldDescriptor *field_named(const ProtobufCMessageDescriptor *d,
                                                   const char *name)
{
    return protobuf_c_message_descriptor_get_field_by_name(d, name);
}

/* The `values` (else `value`) field of d, NULL when it has neither. */
static const ProtobufCFieldDescriptor *main_field(const ProtobufCMessageDescriptor *d)
{
    const ProtobufCFieldDescriptor *f = field_named(d, "values");
    return f ? f : field_named(d, "value");
}

/* 1 if field f of m holds anything but its default (non-zero, non-empty, true, present). */
static int field_is_set(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f)
{
    const char *p = (const char *)m + f->offset;
    if (f->label == PROTOBUF_C_LABEL_REPEATED)
        return *(const size_t *)((const char *)m + f->quantifier_offset) != 0;
    switch (f->type) {
    case PROTOBUF_C_TYPE_FLOAT: return *(const float *)p != 0.0f;
    case PROTOBUF_C_TYPE_DOUBLE: return *(const double *)p != 0.0;
    case PROTOBUF_C_TYPE_STRING: {
        const char *str = *(char *const *)p;
        return str && str[0];
    }
    case PROTOBUF_C_TYPE_BYTES: return ((const ProtobufCBinaryData *)p)->len != 0;
    case PROTOBUF_C_TYPE_MESSAGE: return *(ProtobufCMessage *const *)p != NULL;
    default: {
        size_t sz = type_size(f->type);
        for (size_t i = 0; i < sz; i++)
            if (p[i])
                return 1;
        return 0;
    }
    }
}

static const pacctl_json_rule_t *rule_for(const pacctl_json_view_t *view,
                                          const ProtobufCMessageDescriptor *d,
                                          const ProtobufCFieldDescriptor *f)
{
    for (size_t i = 0; view && i < view->n_rules; i++)
        if (!strcmp(view->rules[i].message, d->name) && !strcmp(view->rules[i].field, f->name))
            return &view->rules[i];
    return NULL;
}

/* 0 if the rule r (may be NULL) leaves field f of m out. */
static int printed(const ProtobufCMessage *m, const pacctl_json_rule_t *r)
{
    if (!r)
        return 1;
    if (r->how == PACCTL_JSON_OMIT)
        return 0;
    if (!r->when)
        return 1;
    const ProtobufCFieldDescriptor *w = field_named(m->descriptor, r->when);
    return w && field_is_set(m, w);
}

static void set_joined(json_t *o, const char *a, const char *b, json_t *value)
{
    char key[128];
    snprintf(key, sizeof key, "%s_%s", a, b);
    json_object_set_new(o, key, value);
}

/* PACCTL_JSON_BY_NAME: 0, or -1 when f is not a repeated message with `name`
 * and `values`/`value` fields. */
static int by_name(json_t *o, const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f,
                   const pacctl_json_view_t *view)
{
    if (f->type != PROTOBUF_C_TYPE_MESSAGE || f->label != PROTOBUF_C_LABEL_REPEATED)
        return -1;
    const ProtobufCMessageDescriptor *ed = f->descriptor;
    const ProtobufCFieldDescriptor *namef = field_named(ed, "name"), *mainf = main_field(ed);
    if (!namef || namef->type != PROTOBUF_C_TYPE_STRING ||
        namef->label == PROTOBUF_C_LABEL_REPEATED || !mainf)
        return -1;
    const char *base = (const char *)m;
    size_t n = *(const size_t *)(base + f->quantifier_offset);
    ProtobufCMessage *const *elems = *(ProtobufCMessage *const *const *)(base + f->offset);
    /* the main field under the field's key, then each other field in field order */
    const ProtobufCFieldDescriptor *order[1 + 64];
    size_t n_order = 0;
    order[n_order++] = mainf;
    for (unsigned g = 0; g < ed->n_fields && n_order < 1 + 64; g++)
        if (&ed->fields[g] != namef && &ed->fields[g] != mainf)
            order[n_order++] = &ed->fields[g];
    for (size_t g = 0; g < n_order; g++) {
        json_t *obj = json_object();
        for (size_t k = 0; k < n && elems; k++) {
            const char *name = *(char *const *)((const char *)elems[k] + namef->offset);
            json_object_set_new(obj, name ? name : "", field_value(elems[k], order[g], view));
        }
        if (g == 0)
            json_object_set_new(o, f->name, obj);
        else
            set_joined(o, f->name, order[g]->name, obj);
    }
    return 0;
}

/* PACCTL_JSON_FLATTEN: 0, or -1 when f is not a singular message with a
 * `values`/`value` field. */
static int flatten(json_t *o, const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f,
                   const pacctl_json_view_t *view)
{
    if (f->type != PROTOBUF_C_TYPE_MESSAGE || f->label == PROTOBUF_C_LABEL_REPEATED)
        return -1;
    const ProtobufCMessageDescriptor *ed = f->descriptor;
    const ProtobufCFieldDescriptor *mainf = main_field(ed);
    if (!mainf)
        return -1;
    const ProtobufCMessage *sub = *(ProtobufCMessage *const *)((const char *)m + f->offset);
    void *defaults = NULL;
    if (!sub) {
        defaults = calloc(1, ed->sizeof_message);
        if (!defaults)
            return -1;
        ed->message_init(defaults);
        sub = defaults;
    }
    json_object_set_new(o, f->name, field_value(sub, mainf, view));
    for (unsigned g = 0; g < ed->n_fields; g++) {
        const ProtobufCFieldDescriptor *gf = &ed->fields[g];
        if (gf != mainf && printed(sub, rule_for(view, ed, gf)))
            set_joined(o, f->name, gf->name, field_value(sub, gf, view));
    }
    free(defaults);
    return 0;
}

/* PACCTL_JSON_ARRAY: the scalar fields of the message in field f as one array
 * (null when absent). */
static json_t *as_array(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f,
                        const pacctl_json_view_t *view)
{
    if (f->type != PROTOBUF_C_TYPE_MESSAGE || f->label == PROTOBUF_C_LABEL_REPEATED)
        return field_value(m, f, view);
    const ProtobufCMessage *sub = *(ProtobufCMessage *const *)((const char *)m + f->offset);
    if (!sub)
        return json_null();
    json_t *a = json_array();
    const ProtobufCMessageDescriptor *ed = f->descriptor;
    for (unsigned g = 0; g < ed->n_fields; g++)
        json_array_append_new(a, field_value(sub, &ed->fields[g], view));
    return a;
}

static json_t *message_json(const ProtobufCMessage *m, const pacctl_json_view_t *view)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    json_t *o = json_object();
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        const pacctl_json_rule_t *r = rule_for(view, d, f);
        if (!printed(m, r))
            continue;
        pacctl_json_how_t how = r ? r->how : PACCTL_JSON_FIELD;
        if (how == PACCTL_JSON_BY_NAME && by_name(o, m, f, view) == 0)
            continue;
        if (how == PACCTL_JSON_FLATTEN && flatten(o, m, f, view) == 0)
            continue;
        if (how == PACCTL_JSON_ARRAY) {
            json_object_set_new(o, f->name, as_array(m, f, view));
        } else if (view && view->bytes_as_length && f->type == PROTOBUF_C_TYPE_BYTES &&
                   f->label != PROTOBUF_C_LABEL_REPEATED) {
            const ProtobufCBinaryData *b = (const void *)((const char *)m + f->offset);
            set_joined(o, f->name, "bytes", json_integer((json_int_t)b->len));
        } else {
            json_object_set_new(o, f->name, field_value(m, f, view));
        }
    }
    return o;
}

json_t *pacctl_message_to_json(const ProtobufCMessage *m)
{
    return message_json(m, NULL);
}

json_t *pacctl_message_to_json_view(const ProtobufCMessage *m, const pacctl_json_view_t *view)
{
    return message_json(m, view);
}
