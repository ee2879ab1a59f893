#!/usr/bin/env python3
"""Server-side cost of the store's Lua scripts, from Redis's own accounting.

For each case: populate keys, `CONFIG RESETSTAT`, send N pipelined calls,
read `INFO commandstats` (usec_per_call of EVALSHA and of the commands the
script runs), delete the keys. Next to the scripts it measures the raw
baselines (`SET ... PX`, `GET`) on the same payload. Keys live under
`bench:helper:*` and are deleted afterwards.

    python3 store-redis/scripts/script_cost.py [--n 20000] [--rounds 3]
        [--rev GIT_REV] [--port 6379] [--data 200] [--case save_ok ...]

`--rev` measures the scripts of another commit (read with `git show`); the
argument layout is chosen from the scripts' source (the pre-fixed-width
layout had one shared `PRELUDE`; since their fast paths, `SAVE` and
`ROTATE` take `'S'` and the version, and `SAVE`, `TOUCH` and `ROTATE` a
mode that may be `'F'`). Needs only python3 and a Redis on
127.0.0.1. Resets the server's statistics: do not run it against a server
whose `INFO commandstats` someone else is reading.
"""

import argparse
import hashlib
import re
import socket
import statistics
import subprocess
import sys
import time

SRC = "store-redis/src/scripts.rs"


# --- a minimal RESP client ---------------------------------------------------


def enc(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        if isinstance(a, int):
            a = str(a).encode()
        elif isinstance(a, str):
            a = a.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


class Conn:
    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port))
        self.buf = b""

    def _line(self):
        while b"\r\n" not in self.buf:
            self.buf += self.s.recv(1 << 20)
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exact(self, n):
        while len(self.buf) < n + 2:
            self.buf += self.s.recv(1 << 20)
        data, self.buf = self.buf[:n], self.buf[n + 2 :]
        return data

    def reply(self):
        line = self._line()
        t, rest = line[:1], line[1:]
        if t == b"+":
            return rest.decode()
        if t == b"-":
            return RuntimeError(rest.decode())
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            return None if n < 0 else self._exact(n)
        if t == b"*":
            n = int(rest)
            return None if n < 0 else [self.reply() for _ in range(n)]
        raise ValueError(line)

    def call(self, *args):
        self.s.sendall(enc(*args))
        r = self.reply()
        if isinstance(r, RuntimeError):
            raise r
        return r

    def pipe(self, cmds, batch=2000):
        """Sends encoded commands in batches; returns the replies."""
        out = []
        for i in range(0, len(cmds), batch):
            chunk = cmds[i : i + batch]
            self.s.sendall(b"".join(chunk))
            out.extend(self.reply() for _ in chunk)
        return out


# --- the scripts' source -----------------------------------------------------


def scripts_source(rev):
    if rev:
        return subprocess.check_output(["git", "show", f"{rev}:{SRC}"], text=True)
    with open(SRC) as f:
        return f.read()


def extract(src):
    """Returns ({name: lua}, layout)."""
    raw = r'r#"(.*?)"#'
    out = {}
    m = re.search(r"const PRELUDE: &str = " + raw, src, re.S)
    if m:  # the old layout: one shared prelude before every body
        prelude = m.group(1)
        for name, body in re.findall(
            r"static (\w+): LazyLock<Script> = LazyLock::new\(\|\| \{\s*script\(\s*" + raw,
            src,
            re.S,
        ):
            out[name] = prelude + body
        return out, "old"
    pieces = dict(re.findall(r"const (LUA_\w+): &str = " + raw, src, re.S))
    layout = "new"
    if "LUA_SAVE_FAST" in pieces:
        layout = "fast+rotate" if "LUA_ROTATE_FAST" in pieces else "fast"
    for name, parts in re.findall(
        r"static (\w+): LazyLock<Script> =\s*LazyLock::new\(\|\|\s*\{?\s*lua\(&\[(.*?)\]\)\s*\}?\)",
        src,
        re.S,
    ):
        names = [p.strip() for p in parts.split(",") if p.strip()]
        out[name] = "".join(pieces[p] for p in names)
    return out, layout


# --- values and arguments ----------------------------------------------------


def fixed(ms):
    return ("-" if ms < 0 else "+") + "%019d" % abs(ms)


DATA = 200  # bytes of session data (--data)


def session(version, idle, absolute, last, user=b"bench-user", data=None):
    data = b"d" * DATA if data is None else data
    h = b"S%020d%s%s%s" % (version, fixed(idle).encode(), fixed(absolute).encode(), fixed(last).encode())
    if user is None:
        h += b"a%010d\n" % 0
        user = b""
    else:
        h += b"u%010d\n" % len(user)
    assert len(h) == 93
    body = user + (7).to_bytes(8, "big") + b"\x01" + (7).to_bytes(8, "big")
    meta = b'{"ip":"127.0.0.1"}'
    return h + body + len(meta).to_bytes(4, "big") + meta + data


class Args:
    """The ARGV of each script in one layout, from semantic inputs."""

    def __init__(self, layout):
        self.old = layout == "old"
        self.fast = layout.startswith("fast")
        self.rotate_fast = layout == "fast+rotate"

    def t(self, ms):
        return str(ms) if self.old else fixed(ms)

    @staticmethod
    def owner(user):
        if user is None:
            return b""
        u = user.encode()
        return b"u%010d\n%s" % (len(u), u)

    @staticmethod
    def last(user):
        return str(92 + len((user or "").encode()))

    def save(self, now, version, user, new_abs, index_written, pxat, value):
        if self.old:
            return [str(now), "%020d" % version, user or "", "1" if user is not None else "0",
                    str(new_abs), "1" if index_written else "0", str(pxat), value]
        if self.fast:
            mode = "1" if index_written else "F" if 0 <= now < new_abs else "0"
            return [fixed(now), "S%020d" % version, self.last(user), self.owner(user), fixed(new_abs),
                    mode, str(pxat), value]
        return [fixed(now), "%020d" % version, self.last(user), self.owner(user), fixed(new_abs),
                "1" if index_written else "0", str(pxat), value]

    def touch(self, now, idle, last, slack):
        if self.old:
            return [str(now), str(idle), str(last), str(slack)]
        out = [fixed(now), fixed(idle), fixed(last), ttl_at(idle, slack), str(slack)]
        if self.fast:
            out.append("F" if min(now, idle, last) >= 0 else "0")
        return out

    def create(self, stamp, max_age, pxat, value):
        return [stamp, str(max_age), str(pxat), value]

    def rotate(self, now, version, stamp, max_age, pxat, value, fwd, fwd_pxat):
        if self.rotate_fast:
            return [fixed(now), "S%020d" % version, stamp, str(max_age), str(pxat), value, fwd, fwd_pxat,
                    "F" if now >= 0 else "0"]
        return [self.t(now), "%020d" % version, stamp, str(max_age), str(pxat), value, fwd, fwd_pxat]

    def delete_owned(self, user, now):
        if self.old:
            return [user, str(now)]
        return [self.owner(user), fixed(now), self.last(user)]

    def index_add(self, member, score, slack):
        out = [member, str(score), str(slack)]
        return out if self.old else out + [ttl_at(score, slack)]


def ttl_at(ms, slack):
    """schema::ttl_at: saturating i64 add, clamped to [1, 2^53 - 1]."""
    return str(min(max(max(min(ms + slack, 2**63 - 1), -(2**63)), 1), 2**53 - 1))


# --- cases -------------------------------------------------------------------

P = "bench:helper:"
SLACK = 60000


def cases(args, shas, n, now):
    idle, absolute = now + 1800000, now + 8 * 3600000
    value = session(0, idle, absolute, now)
    pxat = idle + SLACK
    ev = lambda name, keys, argv: enc("EVALSHA", shas[name], len(keys), *keys, *argv)
    k = P + "k"
    stamp = str(now)

    def keys(tag):
        return [f"{P}{tag}:{i}" for i in range(n)]

    yield "raw_set_px", [enc("SET", k, value)], [enc("SET", k, value, "PX", 1800000)] * n, [k]
    yield "raw_set_pxat", [enc("SET", k, value)], [enc("SET", k, value, "PXAT", pxat)] * n, [k]
    yield "raw_get", [enc("SET", k, value)], [enc("GET", k)] * n, [k]
    save = args.save(now, 0, "bench-user", absolute, False, pxat, value)
    yield "save_ok", [enc("SET", k, value)], [ev("SAVE", [k], save)] * n, [k]
    anon = session(0, idle, absolute, now, user=None)
    save = args.save(now, 0, None, absolute, False, pxat, anon)
    yield "save_ok_anon", [enc("SET", k, anon)], [ev("SAVE", [k], save)] * n, [k]
    save = args.save(now, 1, "bench-user", absolute, False, pxat, value)
    yield "save_conflict", [enc("SET", k, value)], [ev("SAVE", [k], save)] * n, [k]
    save = args.save(now, 0, "bench-user", absolute + 1, False, pxat, value)
    yield "save_needs_index", [enc("SET", k, value)], [ev("SAVE", [k], save)] * n, [k]
    yield "touch_ok", [enc("SET", k, value)], [
        ev("TOUCH", [k], args.touch(now, idle + 1 + i, now + 1 + i, SLACK)) for i in range(n)
    ], [k]
    yield "touch_noop", [enc("SET", k, value)], [ev("TOUCH", [k], args.touch(now, idle, now, SLACK))] * n, [k]
    ks = keys("c")
    yield "create", [], [ev("CREATE", [x], args.create(stamp, 10**12, pxat, value)) for x in ks], ks
    yield "create_exists", [enc("SET", k, value)], [ev("CREATE", [k], args.create(stamp, 10**12, pxat, value))] * n, [k]
    fr, to = keys("rf"), keys("rt")
    yield "rotate", [enc("SET", x, value) for x in fr], [
        ev("ROTATE", [a, b], args.rotate(now, 0, stamp, 10**12, pxat, value, "", "")) for a, b in zip(fr, to)
    ], fr + to
    fwd = b"F" + fixed(now + 60000).encode() + b"\n" + b"s" * 32 + b"t" * 60
    yield "rotate_grace", [enc("SET", x, value) for x in fr], [
        ev("ROTATE", [a, b], args.rotate(now, 0, stamp, 10**12, pxat, value, fwd, str(now + 120000)))
        for a, b in zip(fr, to)
    ], fr + to
    do = keys("d")
    yield "delete_owned", [enc("SET", x, value) for x in do], [
        ev("DELETE_OWNED", [x], args.delete_owned("bench-user", now)) for x in do
    ], do
    z, t = P + "z", P + "z:t"
    members = ["%064x" % i for i in range(10)]
    yield "index_add", [], [
        ev("INDEX_ADD", [z, t], args.index_add(members[i % 10], absolute, SLACK)) for i in range(n)
    ], [z, t]
    setup = [ev("INDEX_ADD", [z, t], args.index_add(m, absolute, SLACK)) for m in members]
    yield "index_members", setup, [ev("INDEX_MEMBERS", [z, t], [str(SLACK), "60000"])] * n, [z, t]


def commandstats(c):
    out = {}
    for line in c.call("INFO", "commandstats").decode().splitlines():
        m = re.match(r"cmdstat_([^:]+):calls=(\d+),usec=(\d+),usec_per_call=([\d.]+)", line)
        if m:
            out[m.group(1)] = (int(m.group(2)), float(m.group(4)))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--rev")
    ap.add_argument("--port", type=int, default=6379)
    ap.add_argument("--data", type=int, default=200, help="bytes of session data")
    ap.add_argument("--case", nargs="*")
    o = ap.parse_args()
    global DATA
    DATA = o.data
    lua, layout = extract(scripts_source(o.rev))
    c = Conn(o.port)
    shas = {name: c.call("SCRIPT", "LOAD", src).decode() for name, src in lua.items()}
    for name, src in lua.items():
        assert shas[name] == hashlib.sha1(src.encode()).hexdigest()
    now = int(time.time() * 1000)
    print(f"# layout {layout}, rev {o.rev or 'worktree'}, n {o.n}, data {o.data} B, median of {o.rounds} rounds, usec_per_call")
    for name, setup, calls, cleanup in cases(Args(layout), shas, o.n, now):
        if o.case and name not in o.case:
            continue
        rounds = []
        for _ in range(o.rounds):
            c.pipe([enc("DEL", x) for x in cleanup])
            replies = c.pipe(setup)
            c.call("CONFIG", "RESETSTAT")
            replies = c.pipe(calls)
            stats = commandstats(c)
            c.pipe([enc("DEL", x) for x in cleanup])
            errs = [r for r in replies if isinstance(r, RuntimeError)]
            if errs:
                sys.exit(f"{name}: {errs[0]}")
            rounds.append(stats)
        top = "evalsha" if "evalsha" in rounds[0] else calls[0].split(b"\r\n")[2].decode().lower()
        med = lambda cmd: statistics.median(r.get(cmd, (0, 0.0))[1] for r in rounds)
        inner = sorted(set().union(*rounds) - {top, "config", "info", "config|resetstat", "script|load"})
        detail = ", ".join(f"{cmd} {med(cmd):.2f}" for cmd in inner)
        print(f"{name:<18} {med(top):6.2f}   reply {replies[-1]!r:.20}   inner: {detail}")


if __name__ == "__main__":
    main()
