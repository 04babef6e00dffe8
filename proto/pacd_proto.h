/* proto — generated pacd.v1 messages plus the schema embedded in logs. */
#ifndef PACD_PROTO_H
#define PACD_PROTO_H

#include <stddef.h>
#include "pacd.pb-c.h"

/* Serialized google.protobuf.FileDescriptorSet of proto/pacd.proto (with
 * imports): the MCAP schema data of every pacd.v1 channel. Immutable. */
extern const unsigned char pacd_proto_descriptor_set[];
extern const size_t pacd_proto_descriptor_set_len;

#endif
