#!/usr/bin/python3
"""Embed a binary file as a C byte array: proto_embed.py IN OUT.c SYMBOL.

Defines `const unsigned char SYMBOL[]` and `const size_t SYMBOL_len`
(declared in proto/pacd_proto.h)."""
import sys

src, dst, sym = sys.argv[1:4]
data = open(src, 'rb').read()
with open(dst, 'w') as f:
    f.write('/* generated from %s by proto_embed.py; do not edit */\n' % src.split('/')[-1])
    f.write('#include <stddef.h>\n')
    f.write('const unsigned char %s[] = {\n' % sym)
    for i in range(0, len(data), 16):
        f.write('  ' + ', '.join('0x%02x' % b for b in data[i:i + 16]) + ',\n')
    f.write('};\n')
    f.write('const size_t %s_len = %d;\n' % (sym, len(data)))
