"""Chapter 1: a likely mistake per exercise; each must fail its self-check."""

WRONG_ANSWERS = {
    "1.1": (
        "counts pairs across the pieces (the bytes of the whole text, no pre-split)",
        """chunks = [list(text[:5000].encode("utf-8"))]
split_vocab = {i: bytes([i]) for i in range(256)}
split_merges = []
for step in range(15):
    counts = collections.Counter()
    for chunk in chunks:
        counts.update(zip(chunk, chunk[1:]))
    pair, _ = counts.most_common(1)[0]
    split_vocab[256 + step] = split_vocab[pair[0]] + split_vocab[pair[1]]
    split_merges.append(split_vocab[256 + step])
    chunks = [merge(chunk, pair, 256 + step) for chunk in chunks]
""",
    ),
    "1.2": (
        "merges the first mergeable pair from the left instead of the lowest rank first",
        """def bpe_encode(text, ranks):
    ids = []
    for piece in pre_split(text):
        parts = [bytes([b]) for b in piece.encode("utf-8")]
        merged = True
        while merged:
            merged = False
            for i in range(len(parts) - 1):
                if parts[i] + parts[i + 1] in ranks:
                    parts[i : i + 2] = [parts[i] + parts[i + 1]]
                    merged = True
                    break
        ids.extend(ranks[part] for part in parts)
    return ids


def bpe_decode(ids, ranks):
    token_bytes = {i: token for token, i in ranks.items()}
    return b"".join(token_bytes[i] for i in ids).decode("utf-8", errors="replace")
""",
    ),
    "1.3": (
        "forgets that each window needs one more token for its target",
        """def n_windows(N, T, S):
    return (N - T) // S + 1
""",
    ),
}
