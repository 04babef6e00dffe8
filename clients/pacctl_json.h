/* pacctl_json — any protobuf-c message as a jansson JSON object, walking the
 * message descriptor (field names as in proto/pacd.proto, enums by name,
 * bytes as "<N bytes>", non-finite floats as null). Not RT-safe (allocates).
 * Caller owns the return value (json_decref). */
#ifndef PACCTL_JSON_H
#define PACCTL_JSON_H

#include <jansson.h>
#include <protobuf-c/protobuf-c.h>

json_t *pacctl_message_to_json(const ProtobufCMessage *m);

#endif
