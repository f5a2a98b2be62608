#!/usr/bin/env python3
"""Reads and forges serialized descriptors (format 2, lib/descr/descriptor_codec.hpp) for
the two-host tests: written from the documented layout, independently of the library.

  descriptor_tool.py secret BASE64              the pool's secret, hex
  descriptor_tool.py agent BASE64               the agent address ("" when none)
  descriptor_tool.py field BASE64 FIELD         a field of the allocation (decimal)
  descriptor_tool.py forge BASE64 FIELD=VALUE.. the descriptor with fields changed, re-sealed
      FIELD: secret (hex, 32 digits), flip_secret (any value), id, block_offset, requested,
             view_offset, view_bytes, nonce (decimal)
"""
import base64
import struct
import sys


def crc32c(data):
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def layout(d):
    name_end = 58 + d[57]
    if struct.unpack_from("<H", d, 4)[0] != 2:
        sys.exit("not a format-2 descriptor")
    agent_len = d[name_end + 16]
    return name_end, name_end + 17 + agent_len


def reseal(d):
    struct.pack_into("<I", d, 8, len(d))
    struct.pack_into("<I", d, 12, 0)
    struct.pack_into("<I", d, 12, crc32c(bytes(d)))


MEMORY_FIELDS = {"id": 0, "type": 8, "block_offset": 16, "requested": 24, "view_offset": 32, "view_bytes": 40}


def main():
    command, text = sys.argv[1], sys.argv[2]
    d = bytearray(base64.b64decode(text))
    name_end, mem_at = layout(d)
    if command == "secret":
        print(d[name_end:name_end + 16].hex())
    elif command == "agent":
        print(d[name_end + 17:mem_at].decode())
    elif command == "field":
        print(struct.unpack_from("<Q", d, mem_at + MEMORY_FIELDS[sys.argv[3]])[0])
    elif command == "forge":
        fields = MEMORY_FIELDS
        for edit in sys.argv[3:]:
            key, value = edit.split("=", 1)
            if key == "secret":
                d[name_end:name_end + 16] = bytes.fromhex(value)
            elif key == "flip_secret":
                d[name_end] ^= 0x01
            elif key == "nonce":
                struct.pack_into("<Q", d, 40, int(value))
            elif key in fields:
                struct.pack_into("<Q", d, mem_at + fields[key], int(value))
            else:
                sys.exit("unknown field " + key)
        reseal(d)
        print(base64.b64encode(bytes(d)).decode())
    else:
        sys.exit("unknown command " + command)


main()
