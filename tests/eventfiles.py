"""Writers of tiny recordings in each neuromorphic dataset's native file format (for tests).

Events are (x, y, t in microseconds, p). Each writer follows the format's own definition, not
snnc's reader: N-MNIST's 40-bit records (Orchard et al.; tonic.io.read_mnist_file), tonic's DVS
Gesture .npy (x, y, p, t in ms), AEDAT 4 (a magic line, a flatbuffer IO header with an XML stream
description, then size-prefixed EVTS flatbuffer packets; inivation's format as the aedat decoder
reads it) and AER-DAT 2.0 (a '#' header, then big-endian address and timestamp words).
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np


def nmnist_bin(path: Path, events) -> None:
    out = bytearray()
    for x, y, t, p in events:
        assert t < 2 ** 23
        out += bytes([x, y, (p << 7) | ((t >> 16) & 0x7F), (t >> 8) & 0xFF, t & 0xFF])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(out))


def gesture_npy(path: Path, events) -> None:
    """tonic's DVS Gesture: rows (x, y, p, t in ms)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, np.array([(x, y, p, t // 1000) for x, y, t, p in events], dtype=np.int64))


def _ioheader(description: str) -> bytes:
    """Flatbuffer table Ioheader {compression: int32 = 0 (none); file_data_position: int64 = -1; description}."""
    text = description.encode()
    buf = bytearray()
    buf += struct.pack("<I", 24) + b"IOHE"                       # root table at 24, file identifier
    buf += struct.pack("<HHHHH", 10, 20, 4, 8, 16)               # vtable at 8: 3 fields
    buf += b"\0" * (24 - len(buf))
    buf += struct.pack("<iiqI", 24 - 8, 0, -1, 44 - 40)          # table: vtable offset, fields; string at 44
    buf += struct.pack("<I", len(text)) + text + b"\0"
    buf += b"\0" * (-len(buf) % 4)
    return bytes(buf)


def _event_packet(events) -> bytes:
    """Size-prefixed flatbuffer EventPacket {elements: [Event {t: int64, x: int16, y: int16, on: bool}]}."""
    body = bytearray()
    body += struct.pack("<I", 16) + b"EVTS"                      # root table at 4 + 16 = 20 (after the prefix)
    body += struct.pack("<HHH", 6, 8, 4) + b"\0\0"               # vtable at 12: one field
    body += struct.pack("<iI", 20 - 12, 28 - 24)                 # table at 20: vtable offset, vector at 28
    body += struct.pack("<I", len(events))                       # vector length at 28, elements 8-aligned at 32
    for x, y, t, p in events:
        body += struct.pack("<qhh?3x", t, x, y, bool(p))
    return struct.pack("<I", len(body)) + bytes(body)


def aedat4(path: Path, events, width: int = 128, height: int = 128) -> None:
    info = (f'<dv version="2.0"><node name="outInfo" path="/mainloop/Recorder/outInfo/">'
            f'<node name="0" path="/mainloop/Recorder/outInfo/0/">'
            f'<attr key="compression" type="string">NONE</attr>'
            f'<attr key="typeIdentifier" type="string">EVTS</attr>'
            f'<node name="info" path="/mainloop/Recorder/outInfo/0/info/">'
            f'<attr key="sizeX" type="int">{width}</attr><attr key="sizeY" type="int">{height}</attr>'
            f'</node></node></node></dv>')
    header = _ioheader(info)
    packet = _event_packet(list(events))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"#!AER-DAT4.0\r\n" + struct.pack("<I", len(header)) + header
                     + struct.pack("<II", 0, len(packet)) + packet)


def aedat2(path: Path, events) -> None:
    """AER-DAT 2.0 with DVS128 addresses as tonic.io.read_dvs_128 decodes them (x bits 8-14, y 1-7, p bit 0)."""
    words = b"".join(struct.pack(">II", (x << 8) | (y << 1) | p, t) for x, y, t, p in events)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"#!AER-DAT2.0\r\n# This is a raw AE data file - do not edit\r\n" + words)
