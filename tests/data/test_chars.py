import numpy as np

from pipeline.data.chars import BOS_CHAR, BOW_CHAR, EOS_CHAR, EOW_CHAR, PAD_CHAR, char_table, token_char_ids


def test_ascii_token():
    ids = token_char_ids("cat", max_chars=8)
    assert ids.tolist() == [BOW_CHAR, 99, 97, 116, EOW_CHAR, PAD_CHAR, PAD_CHAR, PAD_CHAR]


def test_multibyte_utf8():
    # é = C3 A9, 日 = E6 97 A5, 😀 = F0 9F 98 80
    ids = token_char_ids("é日😀", max_chars=12)
    assert ids.tolist() == [BOW_CHAR, 0xC3, 0xA9, 0xE6, 0x97, 0xA5, 0xF0, 0x9F, 0x98, 0x80, EOW_CHAR, PAD_CHAR]


def test_long_token_truncated_keeps_end_marker():
    ids = token_char_ids("a" * 100, max_chars=50)
    assert len(ids) == 50
    assert ids[0] == BOW_CHAR and ids[-1] == EOW_CHAR
    assert (ids[1:-1] == ord("a")).all()


def test_sentence_boundaries_and_padding_rows():
    t = char_table(["<PAD>", "<S>", "</S>", "x"], max_chars=5, pad_rows=[0])
    assert t.dtype == np.int16
    assert t[0].tolist() == [PAD_CHAR] * 5
    assert t[1].tolist() == [BOW_CHAR, BOS_CHAR, EOW_CHAR, PAD_CHAR, PAD_CHAR]
    assert t[2].tolist() == [BOW_CHAR, EOS_CHAR, EOW_CHAR, PAD_CHAR, PAD_CHAR]
    assert t[3].tolist() == [BOW_CHAR, 120, EOW_CHAR, PAD_CHAR, PAD_CHAR]
