import codecs

import pytest

from kb.ingest.textio import UndecodableText, decode_text, detect_encoding

TEXT = "年假：员工每年享有15天带薪年假。Annual leave: 15 days.\n"


@pytest.mark.parametrize(
    ("data", "encoding"),
    [
        (TEXT.encode("utf-8"), "utf-8"),
        (codecs.BOM_UTF8 + TEXT.encode("utf-8"), "utf-8-sig"),
        (TEXT.encode("utf-16"), "utf-16"),  # with BOM
        (TEXT.encode("utf-16-le"), "utf-16-le"),  # without BOM
        (TEXT.encode("gbk"), "gb18030"),
        (TEXT.encode("gb18030"), "gb18030"),
    ],
)
def test_decodes_every_encoding_chinese_offices_use(data, encoding):
    assert detect_encoding(data) == encoding
    assert decode_text(data) == TEXT


def test_gbk_is_not_mistaken_for_a_latin_code_page():
    data = "工牌丢失请联系行政部。".encode("gbk")
    assert decode_text(data) == "工牌丢失请联系行政部。"


def test_line_ends_are_normalised():
    assert decode_text(b"a\r\nb\rc\n") == "a\nb\nc\n"


def test_binary_is_refused():
    with pytest.raises(UndecodableText):
        decode_text(bytes(range(256)) * 4)
