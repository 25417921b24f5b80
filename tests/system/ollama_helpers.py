"""Ollama's side of the Modelfile checks, written for the tests from Ollama's
documented behaviour (Ollama itself is not installable here):

  - parse_modelfile: the Modelfile grammar of Ollama's parser/parser.go: a
    command word (from, adapter, template, system, parameter NAME, message
    ROLE, license, ...; any case) then a value that runs to the first line
    end at which it is complete: bare, "quoted" or \"\"\"triple-quoted\"\"\"
    (no escapes; the quotes are removed after trimming white space); # starts
    a comment line; a Modelfile without FROM is an error;
  - chat_messages: what Ollama's chat handler hands the template: the
    Modelfile's SYSTEM first when the conversation does not start with a
    system message (server/routes.go), then consecutive messages of one role
    joined by a blank line (template/template.go, collate);
  - GoTemplate: the part of Go's text/template that chat templates use:
    text, {{ actions }} with the - trim markers, if / else if / else, range
    with $i, $e :=, variables (:= and =), $ and dot, .Field chains,
    parenthesised pipelines with a field after them, string / number /
    true / false constants, and the builtins eq ne lt le gt ge and or not
    len index slice print. Anything else is an error, never a guess.
"""
import re


class ModelfileError(Exception):
    pass


COMMANDS = {"from", "license", "template", "system", "adapter", "draft", "renderer", "parser",
            "parameter", "message", "requires"}


def _unquote(s):
    if s.startswith('"""'):
        return (s[3:-3], True) if len(s) >= 6 and s.endswith('"""') else ("", False)
    if s.startswith('"'):
        return (s[1:-1], True) if len(s) >= 2 and s.endswith('"') else ("", False)
    return s, True


def parse_modelfile(text):
    """[(command, args)] with FROM as "model" and PARAMETER as its name."""
    cmds, i, n, line = [], 0, len(text), 1
    while i < n:
        c = text[i]
        if c in " \t\r\n":
            line += c == "\n"
            i += 1
            continue
        if c == "#":
            while i < n and text[i] != "\n":
                i += 1
            continue
        m = re.match(r"[A-Za-z]+", text[i:])
        if not m or i + m.end() >= n or text[i + m.end()] not in " \t":
            raise ModelfileError(f"line {line}: a command word and a space expected")
        word = m.group(0).lower()
        if word not in COMMANDS:
            raise ModelfileError(f"line {line}: unknown command {m.group(0)!r}")
        i += m.end() + 1
        name = "model" if word == "from" else word
        if word in ("parameter", "message"):
            m = re.match(r"[A-Za-z0-9_]+" if word == "parameter" else r"[A-Za-z]+", text[i:])
            if not m or i + m.end() >= n or text[i + m.end()] not in " \t":
                raise ModelfileError(f"line {line}: {word} needs a name and a value")
            name = m.group(0) if word == "parameter" else name
            role = m.group(0)
            if word == "message" and role not in ("system", "user", "assistant"):
                raise ModelfileError(f"line {line}: message role {role!r}")
            i += m.end() + 1
        # the value: up to the first line end where it is complete
        start = i
        while True:
            j = text.find("\n", i)
            end = n if j < 0 else j
            value, ok = _unquote(text[start:end].strip(" \t\r\n"))
            if ok:
                break
            if j < 0:
                raise ModelfileError(f"line {line}: unterminated quoted value")
            i = j + 1
        line += text.count("\n", start, end)
        if word == "message":
            value = f"{role}: {value}"
        cmds.append((name, value))
        i = end
    if not any(c == "model" for c, _ in cmds):
        raise ModelfileError("no FROM line")
    return cmds


def chat_messages(conversation, system=None):
    """The .Messages Ollama's template sees for a chat request."""
    msgs = [dict(m) for m in conversation]
    if system and (not msgs or msgs[0]["role"] != "system"):
        msgs.insert(0, {"role": "system", "content": system})
    out = []
    for m in msgs:
        if out and out[-1]["Role"] == m["role"]:
            out[-1]["Content"] += "\n\n" + m["content"]
        else:
            out.append({"Role": m["role"], "Content": m["content"]})
    return out


# ---------------------------------------------------------------- Go templates

class TemplateError(Exception):
    pass


_TOKEN = re.compile(r'\s*(?:(?P<str>"(?:[^"\\]|\\.)*")|(?P<raw>`[^`]*`)|(?P<num>-?\d+)'
                    r'|(?P<decl>:=)|(?P<assign>=)|(?P<punct>[(),|])'
                    r'|(?P<var>\$[A-Za-z0-9_]*)(?P<varfields>(?:\.[A-Za-z0-9_]+)*)'
                    r'|(?P<field>(?:\.[A-Za-z0-9_]+)+|\.)'
                    r'|(?P<ident>[A-Za-z_][A-Za-z0-9_]*))')
_ESC = {"n": "\n", "t": "\t", "\\": "\\", '"': '"', "r": "\r"}


def _lex_action(src):
    toks, i = [], 0
    while i < len(src):
        if src[i:].strip() == "":
            break
        m = _TOKEN.match(src, i)
        if not m or m.end() == i:
            raise TemplateError(f"cannot read {src[i:]!r}")
        i = m.end()
        k = m.lastgroup if m.lastgroup != "varfields" else "var"
        if m.group("str") is not None:
            s = m.group("str")[1:-1]
            toks.append(("const", re.sub(r"\\(.)", lambda e: _ESC[e.group(1)], s)))
        elif m.group("raw") is not None:
            toks.append(("const", m.group("raw")[1:-1]))
        elif m.group("num") is not None:
            toks.append(("const", int(m.group("num"))))
        elif m.group("var") is not None:
            fields = [f for f in (m.group("varfields") or "").split(".") if f]
            toks.append(("var", (m.group("var"), fields)))
        elif m.group("field") is not None:
            toks.append(("field", [f for f in m.group("field").split(".") if f]))
        elif m.group("ident") is not None:
            w = m.group("ident")
            toks.append(("const", w == "true") if w in ("true", "false") else ("ident", w))
        else:
            toks.append((k, m.group(k)))
    return toks


def _split(template):
    """Text and action pieces, trim markers applied."""
    out, i = [], 0
    while True:
        j = template.find("{{", i)
        if j < 0:
            out.append(("text", template[i:]))
            return out
        k = template.find("}}", j + 2)
        if k < 0:
            raise TemplateError("unclosed action")
        text, body = template[i:j], template[j + 2:k]
        if body.startswith("- "):
            text = text.rstrip(" \t\r\n")
            body = body[2:]
        i = k + 2
        trim_after = body.endswith(" -")
        if trim_after:
            body = body[:-2]
        out.append(("text", text))
        out.append(("action", body))
        if trim_after:
            while i < len(template) and template[i] in " \t\r\n":
                i += 1


class GoTemplate:
    FUNCS = {"eq", "ne", "lt", "le", "gt", "ge", "and", "or", "not", "len", "index", "slice",
             "print"}

    def __init__(self, text):
        pieces = _split(text)
        self.tree, rest = self._parse(pieces, 0, top=True)

    # -- parsing: nodes are ("text", s), ("out", pipe), ("set", var, pipe, declare),
    #    ("if", [(pipe, body)], else_body), ("range", (ivar, evar), pipe, body, else_body)
    def _parse(self, pieces, i, top=False):
        body = []
        while i < len(pieces):
            kind, s = pieces[i]
            i += 1
            if kind == "text":
                if s:
                    body.append(("text", s))
                continue
            toks = _lex_action(s)
            if not toks:
                raise TemplateError("empty action")
            head = toks[0]
            if head == ("ident", "end") or head == ("ident", "else"):
                if top:
                    raise TemplateError(f"unexpected {head[1]}")
                return body, (i, toks)
            if head == ("ident", "if"):
                node, i = self._parse_if(pieces, i, toks[1:])
                body.append(node)
            elif head == ("ident", "range"):
                node, i = self._parse_range(pieces, i, toks[1:])
                body.append(node)
            elif head[0] == "var" and len(toks) > 1 and toks[1][0] in ("decl", "assign"):
                body.append(("set", head[1][0], self._pipe(toks[2:]), toks[1][0] == "decl"))
            elif head[0] == "ident" and head[1] not in self.FUNCS:
                raise TemplateError(f"unsupported action {head[1]!r}")
            else:
                body.append(("out", self._pipe(toks)))
        if not top:
            raise TemplateError("missing end")
        return body, None

    def _parse_if(self, pieces, i, cond):
        branches, else_body = [], None
        pipe = self._pipe(cond)
        while True:
            body, stop = self._parse(pieces, i)
            i, toks = stop
            branches.append((pipe, body))
            if toks == [("ident", "end")]:
                return ("if", branches, else_body), i
            if toks[0] == ("ident", "else") and len(toks) > 2 and toks[1] == ("ident", "if"):
                pipe = self._pipe(toks[2:])
                continue
            if toks == [("ident", "else")]:
                else_body, stop = self._parse(pieces, i)
                i, toks = stop
                if toks != [("ident", "end")]:
                    raise TemplateError("else after else")
                return ("if", branches, else_body), i
            raise TemplateError(f"bad {toks}")

    def _parse_range(self, pieces, i, toks):
        names = (None, None)
        if any(t[0] == "decl" for t in toks):
            d = [k for k, t in enumerate(toks) if t[0] == "decl"][0]
            vs = [t for t in toks[:d] if t[0] != "punct"]
            if not 1 <= len(vs) <= 2 or any(v[0] != "var" or v[1][1] for v in vs):
                raise TemplateError("bad range variables")
            names = (vs[0][1][0], vs[1][1][0]) if len(vs) == 2 else (None, vs[0][1][0])
            toks = toks[d + 1:]
        pipe = self._pipe(toks)
        body, stop = self._parse(pieces, i)
        i, end = stop
        else_body = None
        if end == [("ident", "else")]:
            else_body, stop = self._parse(pieces, i)
            i, end = stop
        if end != [("ident", "end")]:
            raise TemplateError("range without end")
        return ("range", names, pipe, body, else_body), i

    def _pipe(self, toks):
        """A command: a function with arguments, or one operand."""
        if any(t == ("punct", "|") for t in toks):
            raise TemplateError("pipes are not supported")
        args, k = [], 0
        while k < len(toks):
            a, k = self._operand(toks, k)
            args.append(a)
        if not args:
            raise TemplateError("empty pipeline")
        if args[0][0] == "func":
            return ("call", args[0][1], args[1:])
        if len(args) != 1:
            raise TemplateError("arguments to a non-function")
        return args[0]

    def _operand(self, toks, k):
        kind, v = toks[k]
        if kind == "punct" and v == "(":
            depth, j = 1, k + 1
            while depth:
                if j >= len(toks):
                    raise TemplateError("unclosed (")
                depth += {"(": 1, ")": -1}.get(toks[j][1], 0) if toks[j][0] == "punct" else 0
                j += 1
            inner = self._pipe(toks[k + 1:j - 1])
            if j < len(toks) and toks[j][0] == "field":  # (pipe).Field
                return ("fields", inner, toks[j][1]), j + 1
            return inner, j
        if kind == "ident":
            if v not in self.FUNCS:
                raise TemplateError(f"unknown function {v!r}")
            return ("func", v), k + 1
        if kind == "const":
            return ("const", v), k + 1
        if kind == "var":
            return ("fields", ("var", v[0]), v[1]), k + 1
        if kind == "field":
            return ("fields", ("dot",), v), k + 1
        raise TemplateError(f"unexpected {v!r}")

    # -- execution
    @staticmethod
    def truth(v):
        """Go's truth: false, 0, nil and empty strings, slices and maps are false."""
        if v is None or isinstance(v, bool):
            return bool(v)
        if isinstance(v, int):
            return v != 0
        if isinstance(v, (str, list, dict)):
            return len(v) > 0
        return True

    def render(self, data):
        out = []
        self._exec(self.tree, data, [{"$": data}], out)
        return "".join(out)

    def _lookup(self, scopes, name):
        for s in reversed(scopes):
            if name in s:
                return s[name]
        raise TemplateError(f"undefined variable {name}")

    def _eval(self, node, dot, scopes):
        kind = node[0]
        if kind == "const":
            return node[1]
        if kind == "dot":
            return dot
        if kind == "var":
            return self._lookup(scopes, node[1])
        if kind == "fields":
            v = self._eval(node[1], dot, scopes)
            for f in node[2]:
                if not isinstance(v, dict):
                    raise TemplateError(f"field {f} of a {type(v).__name__}")
                v = v.get(f)
            return v
        if kind == "call":
            return self._call(node[1], node[2], dot, scopes)
        raise TemplateError(f"cannot evaluate {kind}")

    def _call(self, fn, args, dot, scopes):
        ev = lambda a: self._eval(a, dot, scopes)  # noqa: E731
        if fn == "and":
            v = None
            for a in args:
                v = ev(a)
                if not self.truth(v):
                    return v
            return v
        if fn == "or":
            v = None
            for a in args:
                v = ev(a)
                if self.truth(v):
                    return v
            return v
        vals = [ev(a) for a in args]
        if fn == "not":
            return not self.truth(vals[0])
        if fn == "eq":
            return any(vals[0] == v for v in vals[1:])
        if fn == "ne":
            return vals[0] != vals[1]
        cmp = {"lt": lambda a, b: a < b, "le": lambda a, b: a <= b, "gt": lambda a, b: a > b,
               "ge": lambda a, b: a >= b}
        if fn in cmp:
            if not all(isinstance(v, int) for v in vals[:2]):
                raise TemplateError(f"{fn} of {vals}")
            return cmp[fn](vals[0], vals[1])
        if fn == "len":
            return len(vals[0])
        if fn == "index":
            v = vals[0]
            for i in vals[1:]:
                if isinstance(v, list) and not 0 <= i < len(v):
                    raise TemplateError("index out of range")
                v = v[i]
            return v
        if fn == "slice":
            lo = vals[1] if len(vals) > 1 else 0
            hi = vals[2] if len(vals) > 2 else len(vals[0])
            if not 0 <= lo <= hi <= len(vals[0]):
                raise TemplateError("slice out of range")
            return vals[0][lo:hi]
        if fn == "print":
            return "".join(self._str(v) for v in vals)
        raise TemplateError(fn)

    @staticmethod
    def _str(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if v is None:
            return "<no value>"
        if isinstance(v, (str, int)):
            return str(v)
        raise TemplateError(f"cannot print a {type(v).__name__}")

    def _exec(self, body, dot, scopes, out):
        for node in body:
            kind = node[0]
            if kind == "text":
                out.append(node[1])
            elif kind == "out":
                out.append(self._str(self._eval(node[1], dot, scopes)))
            elif kind == "set":
                v = self._eval(node[2], dot, scopes)
                if node[3]:
                    scopes[-1][node[1]] = v
                else:
                    for s in reversed(scopes):
                        if node[1] in s:
                            s[node[1]] = v
                            break
                    else:
                        raise TemplateError(f"assignment to undeclared {node[1]}")
            elif kind == "if":
                for pipe, b in node[1]:
                    if self.truth(self._eval(pipe, dot, scopes)):
                        self._exec(b, dot, scopes + [{}], out)
                        break
                else:
                    if node[2] is not None:
                        self._exec(node[2], dot, scopes + [{}], out)
            elif kind == "range":
                (iv, ev), pipe, b, else_b = node[1], node[2], node[3], node[4]
                seq = self._eval(pipe, dot, scopes)
                if not isinstance(seq, list):
                    raise TemplateError("range over a non-list")
                for i, e in enumerate(seq):
                    sc = {}
                    if iv:
                        sc[iv] = i
                    if ev:
                        sc[ev] = e
                    self._exec(b, e, scopes + [sc], out)
                if not seq and else_b is not None:
                    self._exec(else_b, dot, scopes + [{}], out)
