#!/usr/bin/env python3
"""Writes pifork(1), in roff, from the program's own --help texts: the top-level help gives
the synopsis, commands, examples, environment and exit status; each command's help becomes
its own subsection. So the man page says what the program says, and a test checks that the
checked-in page (doc/pifork.1) is current.

Usage: scripts/manpage.py [RUNNER...] PIFORK > doc/pifork.1
"""

import re
import subprocess
import sys


def help_text(cmd, *args):
    out = subprocess.run(
        cmd + list(args) + ["--help"], check=True, capture_output=True, text=True
    ).stdout
    return out.replace("\u00a0", " ")


def sections(text):
    """The usage line, the description, and {header: lines} for 'Options:' and the like."""
    lines = text.rstrip("\n").split("\n")
    usage = lines[0].removeprefix("Usage: ")
    out, header, description = {}, None, []
    for line in lines[1:]:
        if re.fullmatch(r"[A-Z][a-z]+( [a-z]+)?:", line):
            header = line[:-1]
            out[header] = []
        elif header is None:
            description.append(line)
        else:
            out[header].append(line)
    return usage, " ".join(l.strip() for l in description if l.strip()), out


def esc(line):
    """A line of text made safe for roff: backslashes, hyphens of options, leading dots."""
    line = line.replace("\\", "\\e").replace("-", "\\-")
    if line.startswith((".", "'")):
        line = "\\&" + line
    return line


def block(lines):
    """Lines kept as they are (a no-fill block), without leading and trailing blanks."""
    while lines and not lines[0].strip():
        lines = lines[1:]
    while lines and not lines[-1].strip():
        lines = lines[:-1]
    body = [esc(l[2:] if l.startswith("  ") else l) for l in lines]
    return [".nf"] + [l if l.strip() else ".sp" for l in body] + [".fi"]


def main():
    cmd = sys.argv[1:]
    if not cmd:
        sys.exit(__doc__.strip().splitlines()[-1])
    version = subprocess.run(cmd + ["--version"], check=True, capture_output=True, text=True)
    version = version.stdout.strip()
    usage, description, top = sections(help_text(cmd))
    commands = [l.split()[0] for l in top.get("Commands", []) if l.startswith("  ") and l.split()
                and not l.startswith("   ")]
    notes = top.get("Notes", [])
    env_at = next((i for i, l in enumerate(notes) if l.strip() == "Environment:"), len(notes))
    page = [
        f'.TH PIFORK 1 "" "{version}" "User Commands"',
        ".SH NAME",
        "pifork \\- " + esc(description.rstrip(".")),
        ".SH SYNOPSIS",
        ".B pifork",
        "\\fICOMMAND\\fR [\\fIOPTIONS\\fR]",
        ".br",
        ".B pifork",
        "\\-\\-version | \\-\\-help",
        ".SH DESCRIPTION",
        esc(description),
        ".PP",
    ]
    page += block(notes[:env_at])
    page.append(".SH COMMANDS")
    for name in commands:
        sub_usage, sub_description, sub = sections(help_text(cmd, name))
        page += [".SS " + esc(name), ".B " + esc(sub_usage), ".PP", esc(sub_description)]
        for header in sub:
            page += [".PP", header + ":"] + block(sub[header])
    page += [".SH EXAMPLES"] + block(top.get("Examples", []))
    page += [".SH ENVIRONMENT"] + block(notes[env_at + 1:])
    page += [".SH EXIT STATUS", "0 on success;"] + block(top.get("Error codes", []))
    page += [
        ".SH FILES",
        ".TP",
        ".I /var/lib/pifork/state",
        "The progress of \\fBpifork serve\\fR under systemd (readable by root only).",
        ".TP",
        ".I /usr/lib/systemd/system/pifork.service",
        "The service; \\fBsystemctl edit pifork\\fR sets its job.",
        ".SH SEE ALSO",
        ".BR systemctl (1),",
        ".BR journalctl (1),",
        ".BR systemd.exec (5)",
    ]
    sys.stdout.write("\n".join(page) + "\n")


main()
