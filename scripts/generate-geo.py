#!/usr/bin/env python3
"""Regenerates services/auth/data/geo.json (countries and first-level subdivisions).

Source: Debian's `iso-codes` package (ISO 3166-1 and 3166-2, LGPL-2.1-or-later), with its
Arabic and French translations of country names. Run after `apt-get install iso-codes`.
"""
import gettext
import json
import re
import unicodedata
from pathlib import Path

ROOT = Path("/usr/share/iso-codes/json")
OUT = Path(__file__).resolve().parent.parent / "services/auth/data/geo.json"
# Top-level domains that differ from the lowercase alpha-2 code.
TLD_EXCEPTIONS = {"GB": ".uk"}


def ascii_name(name):
    folded = unicodedata.normalize("NFKD", name)
    return "".join(c for c in folded if not unicodedata.combining(c) and ord(c) < 128).replace("‘", "").strip()


def slugify(text):
    return re.sub(r"[^a-z0-9]+", "-", ascii_name(text).lower()).strip("-")


def translator(lang, domain):
    try:
        return gettext.translation(domain, localedir="/usr/share/locale", languages=[lang]).gettext
    except OSError:
        return None


def main():
    countries = json.loads((ROOT / "iso_3166-1.json").read_text())["3166-1"]
    subdivisions = json.loads((ROOT / "iso_3166-2.json").read_text())["3166-2"]
    tr = {lang: translator(lang, "iso_3166-1") for lang in ("ar", "fr")}
    out_countries = []
    for c in sorted(countries, key=lambda c: c["name"]):
        name = c.get("common_name", c["name"])
        translations = {}
        for lang, t in tr.items():
            if t:
                value = t(name)
                if value == name:
                    value = t(c["name"])
                if value != name:
                    translations[lang] = value
        out_countries.append({
            "code2": c["alpha_2"],
            "code3": c["alpha_3"],
            "name": name,
            "name_ascii": ascii_name(name),
            "slug": slugify(name),
            "official_name": c.get("official_name", ""),
            "numeric": c["numeric"],
            "tld": TLD_EXCEPTIONS.get(c["alpha_2"], "." + c["alpha_2"].lower()),
            "translations": translations,
        })
    regions = []
    for s in subdivisions:
        if "parent" in s:
            continue
        country, code = s["code"].split("-", 1)
        regions.append({"country": country, "code": code, "name": s["name"], "name_ascii": ascii_name(s["name"]),
                        "slug": slugify(s["name"]) or code.lower(), "type": s["type"]})
    regions.sort(key=lambda r: (r["country"], r["name"]))
    OUT.write_text(json.dumps({"source": "Debian iso-codes (ISO 3166-1, ISO 3166-2), LGPL-2.1-or-later",
                               "countries": out_countries, "regions": regions}, ensure_ascii=False, separators=(",", ":")))
    print(f"{len(out_countries)} countries, {len(regions)} regions -> {OUT}")


if __name__ == "__main__":
    main()
