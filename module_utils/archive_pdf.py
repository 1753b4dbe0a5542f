# -*- coding: utf-8 -*-
"""Stdlib-only structural PDF checker (usability property).

``check_pdf(data)`` parses what a reader needs to open the document and
raises ``PDFError`` naming the first defect:

* header ``%PDF-1.x`` / ``%PDF-2.0`` and trailing ``%%EOF``;
* ``startxref`` -> classic xref table(s) or xref stream(s) (Flate, PNG
  predictors), following ``/Prev`` chains (incremental updates);
* every in-use xref entry points at ``N G obj`` whose body parses;
  objects in object streams (``/Type /ObjStm``) are resolved;
* every stream's ``/Length`` (direct or indirect) lands on ``endstream``;
  Flate streams inflate;
* trailer ``/Root`` is a ``/Catalog`` whose ``/Pages`` tree is walked
  (cycles, wrong types, ``/Count`` mismatches are errors), every page has a
  ``/MediaBox`` (own or inherited) and its content streams exist.

Returns a dict with ``pages``, ``version``, ``objects``, ``xref`` kind.
``data`` can be bytes or an mmap.
"""
from __future__ import annotations

import re
import zlib


class PDFError(Exception):
    pass


WS = b" \t\r\n\f\0"
DELIM = b"()<>[]{}/%"
_ws_re = re.compile(rb"(?:[ \t\r\n\f\0]+|%[^\r\n]*)+")
_num_re = re.compile(rb"[+-]?(?:\d+\.?\d*|\.\d+)")
_name_re = re.compile(rb"/[^ \t\r\n\f\0()<>\[\]{}/%]*")
_ref_re = re.compile(rb"(\d+)[ \t\r\n\f\0]+(\d+)[ \t\r\n\f\0]+R(?![^ \t\r\n\f\0()<>\[\]{}/%])")
_obj_re = re.compile(rb"[ \t\r\n\f\0]*(\d+)[ \t\r\n\f\0]+(\d+)[ \t\r\n\f\0]+obj")


class Ref(tuple):
    __slots__ = ()

    def __new__(cls, num, gen):
        return tuple.__new__(cls, (num, gen))


class Name(str):
    pass


class Stream:
    __slots__ = ("dict", "start", "length")

    def __init__(self, d, start, length):
        self.dict, self.start, self.length = d, start, length


class _Parser:
    def __init__(self, data, pos=0):
        self.d = data
        self.p = pos
        self.n = len(data)

    def ws(self):
        m = _ws_re.match(self.d, self.p)
        if m:
            self.p = m.end()

    def value(self, depth=0):
        if depth > 64:
            raise PDFError("nesting too deep at %d" % self.p)
        self.ws()
        if self.p >= self.n:
            raise PDFError("unexpected end of data")
        d, p = self.d, self.p
        c = d[p:p + 1]
        if c == b"/":
            m = _name_re.match(d, p)
            self.p = m.end()
            return Name(m.group()[1:].decode("latin-1"))
        if c == b"<":
            if d[p:p + 2] == b"<<":
                self.p += 2
                res = {}
                while True:
                    self.ws()
                    if d[self.p:self.p + 2] == b">>":
                        self.p += 2
                        return res
                    k = self.value(depth + 1)
                    if not isinstance(k, Name):
                        raise PDFError("dictionary key is not a name at %d" % self.p)
                    res[str(k)] = self.value(depth + 1)
            end = d.find(b">", p)
            if end < 0:
                raise PDFError("unterminated hex string at %d" % p)
            hexs = re.sub(rb"\s", b"", d[p + 1:end])
            if not re.fullmatch(rb"[0-9A-Fa-f]*", hexs):
                raise PDFError("bad hex string at %d" % p)
            self.p = end + 1
            return bytes.fromhex((hexs + b"0" * (len(hexs) % 2)).decode())
        if c == b"[":
            self.p += 1
            res = []
            while True:
                self.ws()
                if d[self.p:self.p + 1] == b"]":
                    self.p += 1
                    return res
                res.append(self.value(depth + 1))
        if c == b"(":
            lvl, i = 0, p
            while i < self.n:
                ch = d[i]
                if ch == 0x5C:  # backslash
                    i += 2
                    continue
                if ch == 0x28:
                    lvl += 1
                elif ch == 0x29:
                    lvl -= 1
                    if lvl == 0:
                        self.p = i + 1
                        return bytes(d[p + 1:i])
                i += 1
            raise PDFError("unterminated string at %d" % p)
        m = _ref_re.match(d, p)
        if m:
            self.p = m.end()
            return Ref(int(m.group(1)), int(m.group(2)))
        m = _num_re.match(d, p)
        if m:
            self.p = m.end()
            s = m.group()
            return float(s) if b"." in s else int(s)
        for kw, v in ((b"true", True), (b"false", False), (b"null", None)):
            if d[p:p + len(kw)] == kw:
                self.p += len(kw)
                return v
        raise PDFError("unexpected token %r at %d" % (bytes(d[p:p + 12]), p))


def _inflate(raw, parms):
    try:
        out = zlib.decompress(bytes(raw))
    except zlib.error as e:
        raise PDFError("Flate stream does not inflate: %s" % e)
    pred = (parms or {}).get("Predictor", 1) if isinstance(parms, dict) else 1
    if pred and pred >= 10:
        cols = parms.get("Columns", 1)
        row = cols + 1
        prev = bytearray(cols)
        res = bytearray()
        for i in range(0, len(out), row):
            ft, line = out[i], bytearray(out[i + 1:i + row])
            if ft == 2:
                for j in range(len(line)):
                    line[j] = (line[j] + prev[j]) & 0xFF
            elif ft == 1:
                for j in range(1, len(line)):
                    line[j] = (line[j] + line[j - 1]) & 0xFF
            elif ft != 0:
                raise PDFError("unsupported PNG predictor type %d in xref stream" % ft)
            res += line
            prev = line
        return bytes(res)
    return out


class PDFDoc:
    def __init__(self, data):
        self.d = data
        self.n = len(data)
        self.xref = {}      # num -> ("n", offset, gen) | ("o", stream_num, index)
        self.trailer = {}
        self.cache = {}
        self.xref_kind = set()
        self.version = None

    # -- xref
    def load(self):
        d = self.d
        head = bytes(d[:1024])
        m = re.search(rb"%PDF-(\d\.\d)", head)
        if not m:
            raise PDFError("no %PDF- header in the first 1024 bytes")
        self.version = m.group(1).decode()
        self.base = m.start()
        tail = bytes(d[max(0, self.n - 2048):])
        if b"%%EOF" not in tail:
            raise PDFError("no %%EOF marker at the end (truncated?)")
        m = None
        for m in re.finditer(rb"startxref[ \t\r\n\f\0]+(\d+)", tail):
            pass
        if not m:
            raise PDFError("no startxref at the end (truncated?)")
        off = int(m.group(1))
        seen = set()
        first = True
        while off is not None:
            if off in seen:
                raise PDFError("xref /Prev loop at %d" % off)
            seen.add(off)
            tr = self._read_xref(off)
            if first:
                self.trailer = tr
                first = False
            if "XRefStm" in tr:
                self._read_xref(int(tr["XRefStm"]))
            prev = tr.get("Prev")
            off = int(prev) if prev is not None else None
        if "Root" not in self.trailer:
            raise PDFError("trailer has no /Root")

    def _read_xref(self, off):
        if not 0 <= off < self.n:
            raise PDFError("startxref/Prev offset %d outside file" % off)
        p = _Parser(self.d, off)
        p.ws()
        if self.d[p.p:p.p + 4] == b"xref":
            self.xref_kind.add("table")
            p.p += 4
            while True:
                p.ws()
                if self.d[p.p:p.p + 7] == b"trailer":
                    p.p += 7
                    tr = p.value()
                    if not isinstance(tr, dict):
                        raise PDFError("trailer is not a dictionary")
                    return tr
                m = re.compile(rb"(\d+)[ \t]+(\d+)[ \t]*\r?\n?").match(self.d, p.p)
                if not m:
                    raise PDFError("bad xref subsection header at %d" % p.p)
                start, count = int(m.group(1)), int(m.group(2))
                p.p = m.end()
                p.ws()
                blob = bytes(self.d[p.p:p.p + 20 * count])
                ent = re.compile(rb"(\d{10}) (\d{5}) ([nf])[ \r\n]{0,2}")
                pos = 0
                for i in range(count):
                    em = ent.match(blob, pos)
                    if not em:
                        raise PDFError("bad xref entry %d at %d" % (start + i, p.p + pos))
                    pos = em.end()
                    num = start + i
                    if num not in self.xref and em.group(3) == b"n":
                        self.xref[num] = ("n", int(em.group(1)), int(em.group(2)))
                    elif num not in self.xref:
                        self.xref[num] = ("f", 0, 0)
                p.p += pos
        # xref stream
        self.xref_kind.add("stream")
        num, gen, obj = self._parse_obj_at(off)
        if not isinstance(obj, Stream) or obj.dict.get("Type") != "XRef":
            raise PDFError("startxref %d points at neither xref nor XRef stream" % off)
        dd = obj.dict
        data = self._stream_data(obj)
        w = dd.get("W")
        if not (isinstance(w, list) and len(w) == 3):
            raise PDFError("XRef stream /W invalid")
        size = int(dd.get("Size", 0))
        index = dd.get("Index") or [0, size]
        rec = sum(w)
        pos = 0

        def field(b, default):
            if not b:
                return default
            return int.from_bytes(b, "big")

        for i in range(0, len(index), 2):
            start, count = int(index[i]), int(index[i + 1])
            for k in range(count):
                r = data[pos:pos + rec]
                if len(r) < rec:
                    raise PDFError("XRef stream data short")
                pos += rec
                t = field(r[:w[0]], 1)
                f2 = field(r[w[0]:w[0] + w[1]], 0)
                f3 = field(r[w[0] + w[1]:], 0)
                n = start + k
                if n in self.xref:
                    continue
                if t == 1:
                    self.xref[n] = ("n", f2, f3)
                elif t == 2:
                    self.xref[n] = ("o", f2, f3)
                else:
                    self.xref[n] = ("f", 0, 0)
        return dd

    # -- objects
    def _parse_obj_at(self, off):
        m = _obj_re.match(self.d, off)
        if not m:
            raise PDFError("no 'N G obj' at offset %d" % off)
        num, gen = int(m.group(1)), int(m.group(2))
        p = _Parser(self.d, m.end())
        val = p.value()
        p.ws()
        if self.d[p.p:p.p + 6] == b"stream":
            if not isinstance(val, dict):
                raise PDFError("stream without dictionary in object %d" % num)
            s = p.p + 6
            if self.d[s:s + 2] == b"\r\n":
                s += 2
            elif self.d[s:s + 1] in (b"\n", b"\r"):
                s += 1
            else:
                raise PDFError("'stream' not followed by EOL in object %d" % num)
            ln = val.get("Length")
            if isinstance(ln, Ref):
                ln = self.resolve(ln)
            if not isinstance(ln, int) or ln < 0:
                raise PDFError("object %d: stream /Length missing or invalid" % num)
            e = s + ln
            if e > self.n:
                raise PDFError("object %d: stream runs past end of file (truncated?)" % num)
            after = bytes(self.d[e:e + 32]).lstrip(WS)
            if not after.startswith(b"endstream"):
                raise PDFError("object %d: /Length %d does not end at 'endstream'" % (num, ln))
            val = Stream(val, s, ln)
        elif self.d[p.p:p.p + 6] != b"endobj":
            raise PDFError("object %d at %d: missing endobj" % (num, off))
        return num, gen, val

    def _stream_data(self, st):
        raw = self.d[st.start:st.start + st.length]
        flt = st.dict.get("Filter")
        parms = st.dict.get("DecodeParms")
        if isinstance(flt, list):
            if not flt:
                flt = None
            elif len(flt) == 1:
                flt = flt[0]
                parms = parms[0] if isinstance(parms, list) and parms else parms
            else:
                return None  # chained filters: structure checked, data not decoded
        if flt is None:
            return bytes(raw)
        if flt == "FlateDecode":
            return _inflate(raw, parms)
        return None  # DCT/JBIG2/CCITT image data: not decoded here

    def resolve(self, ref, depth=0):
        if not isinstance(ref, Ref):
            return ref
        if depth > 32:
            raise PDFError("reference chain too deep")
        num = ref[0]
        if num in self.cache:
            return self.cache[num]
        ent = self.xref.get(num)
        if ent is None or ent[0] == "f":
            return None  # PDF: reference to a missing object is null
        if ent[0] == "n":
            gnum, _gen, val = self._parse_obj_at(ent[1])
            if gnum != num:
                raise PDFError("xref for object %d points at object %d" % (num, gnum))
        else:
            val = self._from_objstm(ent[1], ent[2], num)
        self.cache[num] = val
        return val

    def _from_objstm(self, snum, idx, num):
        st = self.resolve(Ref(snum, 0))
        if not isinstance(st, Stream) or st.dict.get("Type") != "ObjStm":
            raise PDFError("object %d: container %d is not an object stream" % (num, snum))
        data = self._stream_data(st)
        if data is None:
            raise PDFError("object stream %d uses an unsupported filter" % snum)
        n, first = int(st.dict.get("N", 0)), int(st.dict.get("First", 0))
        hp = _Parser(data)
        pairs = []
        for _ in range(n):
            a, b = hp.value(), hp.value()
            pairs.append((a, b))
        for a, b in pairs:
            if a == num:
                return _Parser(data, first + b).value()
        raise PDFError("object %d not found in object stream %d" % (num, snum))

    def check_all_objects(self):
        count = 0
        for num, ent in sorted(self.xref.items()):
            if ent[0] == "f":
                continue
            val = self.resolve(Ref(num, ent[2] if ent[0] == "n" else 0))
            if isinstance(val, Stream):
                flt = val.dict.get("Filter")
                if flt == "FlateDecode" or flt == ["FlateDecode"]:
                    self._stream_data(val)
            count += 1
        return count

    def pages(self):
        root = self.resolve(self.trailer["Root"])
        if not isinstance(root, dict) or root.get("Type") != "Catalog":
            raise PDFError("/Root is not a /Catalog dictionary")
        top_ref = root.get("Pages")
        top = self.resolve(top_ref)
        if not isinstance(top, dict) or top.get("Type") != "Pages":
            raise PDFError("/Catalog /Pages is not a page tree node")
        seen = set()
        n = 0

        def walk(node, ref, inherited, depth):
            nonlocal n
            if depth > 64:
                raise PDFError("page tree too deep")
            if isinstance(ref, Ref):
                if ref in seen:
                    raise PDFError("page tree cycle at object %d" % ref[0])
                seen.add(ref)
            inh = dict(inherited)
            for k in ("MediaBox", "Resources"):
                if k in node:
                    inh[k] = node[k]
            t = node.get("Type")
            if t == "Page":
                if "MediaBox" not in inh:
                    raise PDFError("page %d has no /MediaBox" % (n + 1))
                cont = node.get("Contents")
                items = cont if isinstance(cont, list) else ([cont] if cont is not None else [])
                for c in items:
                    cs = self.resolve(c)
                    if not isinstance(cs, Stream):
                        raise PDFError("page %d: /Contents is not a stream" % (n + 1))
                n += 1
                return 1
            if t != "Pages":
                raise PDFError("page tree node of type %r" % t)
            kids = self.resolve(node.get("Kids"))
            if not isinstance(kids, list):
                raise PDFError("page tree node without /Kids array")
            total = 0
            for k in kids:
                kid = self.resolve(k)
                if not isinstance(kid, dict):
                    raise PDFError("page tree kid %r is not a dictionary" % (k,))
                total += walk(kid, k, inh, depth + 1)
            cnt = self.resolve(node.get("Count"))
            if cnt != total:
                raise PDFError("page tree /Count %r but %d pages found" % (cnt, total))
            return total

        return walk(top, top_ref, {}, 0)


def check_pdf(data):
    """Structural check; returns info dict or raises PDFError."""
    if len(data) < 64:
        raise PDFError("file too small to be a PDF (%d bytes)" % len(data))
    doc = PDFDoc(data)
    try:
        doc.load()
        objects = doc.check_all_objects()
        pages = doc.pages()
    except PDFError:
        raise
    except (ValueError, TypeError, KeyError, IndexError, RecursionError, AttributeError) as e:
        raise PDFError("malformed PDF: %s: %s" % (type(e).__name__, e))
    if pages < 1:
        raise PDFError("document has no pages")
    return {"pages": pages, "version": doc.version, "objects": objects,
            "xref": "+".join(sorted(doc.xref_kind))}
