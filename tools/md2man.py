#!/usr/bin/env python3
"""md2man: the project's Markdown documents as roff man pages (man(7) + tbl).

    md2man.py IN.md OUT.N [--name NAME --section N --summary TEXT]
              [--source "bkrfs 0.1.0"] [--manual TITLE] [--skip-section PREFIX]...

Understands the subset docs/*.md use: a pandoc title block ("% BKR(1) src |
Manual"), # / ## / ### headings, paragraphs, **bold**, *italic*, `code`,
[links](url), definition lists ("term" then ":   text", continued by lines
indented four spaces), "-" and "1." lists, indented and fenced code blocks,
and pipe tables (as tagged paragraphs).  A document without a title block gets
its NAME section from --name/--section/--summary; its "#" heading is the
document's title and is dropped, "##" are sections, "###" subsections.
Everything else is text: roff's control characters are escaped, non-ASCII
characters become \\[uXXXX] escapes, so groff never guesses an encoding.
Run at build time by meson (man/meson.build); needs only python3.
"""
import argparse
import re
import sys


def esc_text(s):
    """Escape plain text for roff (not yet any inline markup)."""
    out = []
    for ch in s:
        if ch == "\\":
            out.append("\\e")
        elif ch == "-":
            out.append("\\-")
        elif ord(ch) > 127:
            out.append("\\[u%04X]" % ord(ch))
        else:
            out.append(ch)
    return "".join(out)


INLINE = re.compile(r"(\*\*(?P<b>.+?)\*\*|`(?P<c>[^`]+)`|(?<![\w*])\*(?P<i>[^*\s][^*]*?)\*(?!\*)"
                    r"|\[(?P<lt>[^\]]+)\]\((?P<lu>[^)]+)\))")


def inline(s, font="R"):
    """Markdown inline markup to roff font escapes; @p font is the font to return to."""
    out, pos = [], 0
    for m in INLINE.finditer(s):
        out.append(esc_text(s[pos:m.start()]))
        if m.group("b") is not None:
            out.append("\\fB" + inline(m.group("b"), "B") + "\\f" + font)
        elif m.group("c") is not None:
            # code may be one long word (JSON): allow breaks after , and /
            code = esc_text(m.group("c")).replace(",", ",\\:").replace("/", "/\\:")
            out.append("\\fB" + code + "\\f" + font)
        elif m.group("i") is not None:
            out.append("\\fI" + inline(m.group("i"), "I") + "\\f" + font)
        else:
            text, url = m.group("lt"), m.group("lu")
            out.append(inline(text, font))
            if url != text:
                out.append(" (" + esc_text(url) + ")")
        pos = m.end()
    out.append(esc_text(s[pos:]))
    return "".join(out)


def text_lines(s):
    """Inline-rendered text as lines safe to put in a roff file."""
    line = inline(s.strip())
    # a line starting with '.' or '\'' would be a request
    if line.startswith(".") or line.startswith("'"):
        line = "\\&" + line
    return [line]


def code_block(lines):
    out = [".PP", ".RS 4", ".nf"]
    for l in lines:
        l = esc_text(l)
        if l.startswith(".") or l.startswith("'"):
            l = "\\&" + l
        out.append(l)
    out += [".fi", ".RE"]
    return out


def table(rows):
    """A pipe table as tagged paragraphs: the first cell is the tag, the
    others follow as "header: cell" (a two-column table: just the cell).
    Reads well at any width, with no tbl and no column to overflow."""
    cells = [[c.strip() for c in r.strip().strip("|").split("|")] for r in rows]
    cells = [r for r in cells if not all(re.fullmatch(r":?-{3,}:?", c) for c in r)]
    head, rows = cells[0], cells[1:]
    out = [".PP"]
    for r in rows:
        r = r + [""] * (len(head) - len(r))
        out.append(".TP")
        out.extend(text_lines(r[0]))
        if len(head) == 2:
            out.extend(text_lines(r[1]))
        else:
            out.extend(text_lines("; ".join("%s: %s" % (h, c) for h, c in zip(head[1:], r[1:]) if c)))
    return out


def sub_blocks(lines):
    """The body of a list item or definition: its first paragraph follows the
    tag; later paragraphs and code stay indented with it."""
    out, first = [], True
    for r in blocks(lines):
        if r == ".PP":
            if not first:
                out.append(".IP")
            first = False
            continue
        if r in (".RS 4", ".RE"):
            continue  # .IP already indents
        out.append(r)
    return out


def blocks(lines):
    """Render a list of Markdown lines (a section's body or a definition's) to roff lines."""
    out, i, n = [], 0, len(lines)
    para = []

    def flush():
        if para:
            out.append(".PP")
            out.extend(text_lines(" ".join(para)))
            para.clear()

    while i < n:
        l = lines[i]
        if not l.strip():
            flush()
            i += 1
            continue
        if l.lstrip().startswith("```"):
            flush()
            j = i + 1
            while j < n and not lines[j].lstrip().startswith("```"):
                j += 1
            pad = len(l) - len(l.lstrip())
            out.extend(code_block([c[pad:] if c[:pad].isspace() else c for c in lines[i + 1:j]]))
            i = j + 1
            continue
        if l.startswith("    ") and not para:
            flush()
            j = i
            code = []
            while j < n and (lines[j].startswith("    ") or not lines[j].strip()):
                code.append(lines[j][4:])
                j += 1
            while code and not code[-1].strip():
                code.pop()
            out.extend(code_block(code))
            i = j
            continue
        if l.lstrip().startswith("|"):
            flush()
            j = i
            while j < n and lines[j].lstrip().startswith("|"):
                j += 1
            out.extend(table(lines[i:j]))
            i = j
            continue
        m = re.match(r"^(- |\d+\. )(.*)", l)
        if m and not para:
            # an item: its lines indented under it (paragraphs, code) belong to it
            mark, ind = m.group(1).strip(), len(m.group(1))
            body = [m.group(2)]
            j = i + 1
            while j < n:
                if lines[j].strip() and lines[j].startswith(" " * min(ind, 2)):
                    body.append(lines[j][min(ind, 2):] if not lines[j].startswith(" " * ind) else lines[j][ind:])
                elif not lines[j].strip() and j + 1 < n and lines[j + 1].startswith("  "):
                    body.append("")
                else:
                    break
                j += 1
            out.append(".IP \\(bu 2" if mark == "-" else ".IP %s 4" % mark)
            out.extend(sub_blocks(body))
            i = j
            continue
        # a definition: a term, then ":   text" (continued by indented lines)
        if i + 1 < n and lines[i + 1].startswith(":   ") and not para:
            term = l
            body = [lines[i + 1][4:]]
            j = i + 2
            while j < n and (lines[j].startswith("    ") or not lines[j].strip()):
                if not lines[j].strip() and (j + 1 >= n or not lines[j + 1].startswith("    ")):
                    break
                body.append(lines[j][4:])
                j += 1
            out.append(".TP")
            out.extend(text_lines(term))
            out.extend(sub_blocks(body))
            i = j
            continue
        para.append(l)
        i += 1
    flush()
    return out


def main():
    ap = argparse.ArgumentParser(description="Markdown (docs/*.md) to a roff man page")
    ap.add_argument("input")
    ap.add_argument("output")
    ap.add_argument("--name")
    ap.add_argument("--section")
    ap.add_argument("--summary")
    ap.add_argument("--source", default="bkrfs")
    ap.add_argument("--manual", default="")
    ap.add_argument("--skip-section", action="append", default=[])
    a = ap.parse_args()

    src = open(a.input, encoding="utf-8").read().splitlines()
    out = [".\\\" Generated by tools/md2man.py from %s; do not edit." % a.input.split("/")[-1]]
    level_sh, level_ss = "#", "##"
    m = re.match(r"^% *([^ (]+)\((\w+)\) *([^|]*?) *(\| *(.*))?$", src[0]) if src else None
    if m:
        name, section = m.group(1), m.group(2)
        manual = (m.group(5) or a.manual).strip()
        src = src[1:]
    else:
        if not (a.name and a.section and a.summary):
            sys.exit("md2man: %s has no title block: give --name, --section and --summary" % a.input)
        name, section, manual = a.name.upper(), a.section, a.manual
        level_sh, level_ss = "##", "###"
    out.append('.TH "%s" "%s" "" "%s" "%s"' % (name, section, esc_text(a.source), esc_text(manual)))
    out.append(".ad l")  # ragged right: no line to stretch at 80 columns
    if not m:
        out += [".SH NAME", "%s \\- %s" % (esc_text(a.name), inline(a.summary)), ".SH DESCRIPTION"]

    body, skipping = [], False
    for l in src:
        h = re.match(r"^(#+) +(.*)", l)
        if h:
            level, title = h.group(1), h.group(2).strip()
            if len(level) < len(level_sh):
                continue  # the document's own title: NAME replaces it
            if level == level_sh:
                skipping = any(title.startswith(p) for p in a.skip_section)
            if skipping:
                continue
            out.extend(blocks(body))
            body = []
            if level == level_sh:
                out.append('.SH "%s"' % inline(title).upper().replace('"', ""))
            elif level == level_ss:
                out.append('.SS "%s"' % inline(title).replace('"', ""))
            else:
                out += [".PP", "\\fB" + inline(title, "B") + "\\fR"]
            continue
        if not skipping:
            body.append(l)
    out.extend(blocks(body))
    with open(a.output, "w", encoding="ascii") as f:
        f.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
