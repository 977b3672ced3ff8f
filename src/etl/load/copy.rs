//! PostgreSQL's binary COPY format, and the chunks it travels in from the parsing threads to the
//! connections.

use bytes::{BufMut, Bytes, BytesMut};

pub(super) enum Chunk {
    Data(Bytes),
    /// The table is done: its COPY can finish.
    End,
}

/// Chunks in flight between a parsing thread and PostgreSQL: enough to smooth out bursts, few
/// enough to bound memory (CHUNK bytes each).
pub(super) const CHANNEL: usize = 8;
pub(super) const CHUNK: usize = 1 << 20;

/// Rows in PostgreSQL's binary COPY format: no escaping to do here and no text to parse in the
/// server; each field is its length and its bytes (integers in network order).
pub(super) struct CopyEncoder {
    buf: BytesMut,
}

impl CopyEncoder {
    /// Rows only: each COPY adds the header and the trailer itself, so the rows of one stream can
    /// be spread over several COPYs (see `copy_table`).
    pub(super) fn new() -> CopyEncoder {
        CopyEncoder {
            buf: BytesMut::with_capacity(CHUNK + (64 << 10)),
        }
    }

    pub(super) fn len(&self) -> usize {
        self.buf.len()
    }

    pub(super) fn take(&mut self) -> Bytes {
        let chunk = self.buf.split().freeze();
        self.buf.reserve(CHUNK + (64 << 10));
        chunk
    }

    pub(super) fn finish(self) -> Bytes {
        self.buf.freeze()
    }

    pub(super) fn tuple(&mut self, fields: i16) {
        self.buf.put_i16(fields);
    }

    pub(super) fn int2(&mut self, v: i16) {
        self.buf.put_i32(2);
        self.buf.put_i16(v);
    }

    pub(super) fn int4(&mut self, v: i32) {
        self.buf.put_i32(4);
        self.buf.put_i32(v);
    }

    pub(super) fn int8(&mut self, v: i64) {
        self.buf.put_i32(8);
        self.buf.put_i64(v);
    }

    pub(super) fn bool(&mut self, v: bool) {
        self.buf.put_i32(1);
        self.buf.put_u8(u8::from(v));
    }

    pub(super) fn text(&mut self, v: &[u8]) {
        self.buf.put_i32(v.len() as i32);
        self.buf.put_slice(v);
    }

    pub(super) fn null(&mut self) {
        self.buf.put_i32(-1);
    }

    pub(super) fn int4_array(&mut self, values: impl ExactSizeIterator<Item = i32>) {
        let at = self.array_start(INT4_OID, values.len());
        for v in values {
            self.int4(v);
        }
        self.field_end(at);
    }

    pub(super) fn int8_array(&mut self, values: impl ExactSizeIterator<Item = i64>) {
        let at = self.array_start(INT8_OID, values.len());
        for v in values {
            self.int8(v);
        }
        self.field_end(at);
    }

    pub(super) fn text_array<'a>(&mut self, values: impl ExactSizeIterator<Item = &'a [u8]>) {
        let at = self.array_start(TEXT_OID, values.len());
        for v in values {
            self.text(v);
        }
        self.field_end(at);
    }

    /// An array field's length (patched by `field_end`) and header: one dimension, no nulls,
    /// lower bound 1; an empty array has no dimension at all.
    fn array_start(&mut self, element_oid: u32, n: usize) -> usize {
        let at = self.buf.len();
        self.buf.put_i32(0);
        self.buf.put_i32(i32::from(n > 0));
        self.buf.put_i32(0);
        self.buf.put_u32(element_oid);
        if n > 0 {
            self.buf.put_i32(n as i32);
            self.buf.put_i32(1);
        }
        at
    }

    fn field_end(&mut self, at: usize) {
        let len = (self.buf.len() - at - 4) as i32;
        self.buf[at..at + 4].copy_from_slice(&len.to_be_bytes());
    }
}

/// The binary COPY signature, flags and header extension length; the trailer is a field count
/// of -1.
pub(super) const COPY_HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";
pub(super) const COPY_TRAILER: &[u8] = b"\xff\xff";

const INT4_OID: u32 = 23;
const INT8_OID: u32 = 20;
const TEXT_OID: u32 = 25;
