/* pacctl_json — any protobuf-c message as a jansson JSON object, walking the
 * message descriptor: one key per field, in the field order of
 * proto/pacd.proto, named as there. pacctl_message_to_json prints every field
 * (enums by name, bytes as "<N bytes>", non-finite floats as null, an absent
 * message as null); a view (pacctl_json_view_t) changes how some fields look,
 * by rule, without listing the others. Not RT-safe (allocates). Caller owns
 * the return value (json_decref); NULL when memory cannot be had. */
#ifndef PACCTL_JSON_H
#define PACCTL_JSON_H

#include <stddef.h>

#include <jansson.h>
#include <protobuf-c/protobuf-c.h>

json_t *pacctl_message_to_json(const ProtobufCMessage *m);

/* How a view prints one field. */
typedef enum {
    PACCTL_JSON_FIELD = 0,  /* as pacctl_message_to_json (nested messages by the view) */
    PACCTL_JSON_OMIT,       /* not printed */
    PACCTL_JSON_BY_NAME,    /* repeated message with a string field `name`: an object keyed by
                               name holding the element's `values` (or `value`) field; each
                               other field G of the elements goes to an object "<field>_<G>"
                               keyed by name too (Tensor: observation, observation_shape) */
    PACCTL_JSON_FLATTEN,    /* message: its `values` field under the field's own key, each
                               other field G under "<field>_<G>" (an absent message prints its
                               defaults: Action as action, action_space) */
    PACCTL_JSON_ARRAY,      /* message of scalar fields: one array of them in field order
                               (Pose as [x, y, z, qw, qx, qy, qz]) */
} pacctl_json_how_t;

/* A field of one message type, printed `how`; when `when` names another field
 * of the same message, printed only while that field is set (non-zero,
 * non-empty, true, present). */
typedef struct {
    const char *message;    /* full protobuf name, e.g. "pacd.v1.Step" */
    const char *field;      /* field name as in the .proto */
    pacctl_json_how_t how;
    const char *when;       /* NULL: always */
} pacctl_json_rule_t;

typedef struct {
    int enums_as_numbers;   /* enum values as their numbers instead of their names */
    int bytes_as_length;    /* a bytes field F as "F_bytes": its length */
    const pacctl_json_rule_t *rules;   /* fields not named here: PACCTL_JSON_FIELD */
    size_t n_rules;
} pacctl_json_view_t;

/* m as JSON through view (NULL: as pacctl_message_to_json). */
json_t *pacctl_message_to_json_view(const ProtobufCMessage *m, const pacctl_json_view_t *view);

#endif
