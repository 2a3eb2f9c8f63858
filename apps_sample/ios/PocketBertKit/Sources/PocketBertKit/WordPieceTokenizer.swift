import Foundation

/// Settings of a BERT WordPiece tokenizer, as written in the manifest's `tokenizer` section.
public struct TokenizerConfig: Codable, Equatable {
    public var lowercase: Bool
    /// `nil` means "same as `lowercase`" (Hugging Face's default).
    public var stripAccents: Bool?
    public var tokenizeChineseChars: Bool
    public var cleanText: Bool
    public var continuingSubwordPrefix: String
    public var maxInputCharsPerWord: Int
    public var clsTokenId: Int
    public var sepTokenId: Int
    public var padTokenId: Int
    public var unkTokenId: Int

    enum CodingKeys: String, CodingKey {
        case lowercase, stripAccents = "strip_accents", tokenizeChineseChars = "tokenize_chinese_chars"
        case cleanText = "clean_text", continuingSubwordPrefix = "continuing_subword_prefix"
        case maxInputCharsPerWord = "max_input_chars_per_word", clsTokenId = "cls_token_id"
        case sepTokenId = "sep_token_id", padTokenId = "pad_token_id", unkTokenId = "unk_token_id"
    }

    public init(lowercase: Bool, stripAccents: Bool?, tokenizeChineseChars: Bool = true, cleanText: Bool = true,
                continuingSubwordPrefix: String = "##", maxInputCharsPerWord: Int = 100,
                clsTokenId: Int, sepTokenId: Int, padTokenId: Int, unkTokenId: Int) {
        self.lowercase = lowercase; self.stripAccents = stripAccents
        self.tokenizeChineseChars = tokenizeChineseChars; self.cleanText = cleanText
        self.continuingSubwordPrefix = continuingSubwordPrefix; self.maxInputCharsPerWord = maxInputCharsPerWord
        self.clsTokenId = clsTokenId; self.sepTokenId = sepTokenId; self.padTokenId = padTokenId; self.unkTokenId = unkTokenId
    }
}

/// One encoded input. `offsets` are `[start, end)` UTF-16 offsets into the text each token came from (`(0, 0)` for
/// special tokens and padding); `sequenceIds` is 0 / 1 for the first / second text of a pair, -1 otherwise.
public struct Encoding: Equatable {
    public var inputIds: [Int]
    public var attentionMask: [Int]
    public var offsets: [[Int]]
    public var sequenceIds: [Int]

    /// Number of real tokens (special tokens included, padding excluded).
    public var length: Int { attentionMask.reduce(0, +) }

    /// This encoding padded with `[PAD]` to `size` tokens.
    public func padded(to size: Int, padTokenId: Int) -> Encoding {
        precondition(size >= inputIds.count, "cannot pad \(inputIds.count) tokens to \(size)")
        let extra = size - inputIds.count
        return Encoding(inputIds: inputIds + Array(repeating: padTokenId, count: extra),
                        attentionMask: attentionMask + Array(repeating: 0, count: extra),
                        offsets: offsets + Array(repeating: [0, 0], count: extra),
                        sequenceIds: sequenceIds + Array(repeating: -1, count: extra))
    }
}

public enum TokenizerError: Error, Equatable, CustomStringConvertible {
    case invalidMaxLength(Int)
    case questionTooLong(tokens: Int, maxLength: Int)
    case badSpecialTokenId(Int, vocabSize: Int)

    public var description: String {
        switch self {
        case .invalidMaxLength(let n): return "maxLength must leave room for [CLS] and [SEP], got \(n)"
        case .questionTooLong(let t, let m): return "the question takes \(t) tokens, too many for max length \(m); shorten it"
        case .badSpecialTokenId(let id, let size): return "special token id \(id) is outside the vocabulary (size \(size))"
        }
    }
}

/// BERT WordPiece tokenizer equal to Hugging Face's fast `BertTokenizer` (the same behaviour as the Kotlin core's
/// `WordPieceTokenizer`). Vocabulary lookups compare Unicode scalars exactly: Swift `String` equality would treat
/// `"é"` and `"e\u{301}"` as equal, Hugging Face does not.
public final class WordPieceTokenizer {
    public let config: TokenizerConfig
    private let ids: [[UInt32]: Int]
    private let continuation: [Bool]
    private let prefix: [UInt32]

    /// `vocab`: tokens in id order (line n of `vocab.txt` is id n).
    public init(vocab: [String], config: TokenizerConfig) throws {
        self.config = config
        var ids = [[UInt32]: Int](minimumCapacity: vocab.count)
        for (i, token) in vocab.enumerated() { ids[Self.scalars(token)] = i }  // a repeated token keeps its last id, as HF
        self.ids = ids
        self.prefix = Self.scalars(config.continuingSubwordPrefix)
        self.continuation = vocab.map { $0.unicodeScalars.starts(with: config.continuingSubwordPrefix.unicodeScalars) }
        for id in [config.clsTokenId, config.sepTokenId, config.padTokenId, config.unkTokenId] where !(0..<vocab.count).contains(id) {
            throw TokenizerError.badSpecialTokenId(id, vocabSize: vocab.count)
        }
    }

    private static func scalars(_ s: String) -> [UInt32] { s.unicodeScalars.map(\.value) }

    private struct Token { let id: Int; let start: Int; let end: Int }
    /// Code points with the UTF-16 range of the original character each came from.
    private struct Chars { var cps: [UInt32] = []; var starts: [Int] = []; var ends: [Int] = [] }

    /// `[CLS] text [SEP]`, truncated to at most `maxLength` tokens; not padded.
    public func encode(_ text: String, maxLength: Int) throws -> Encoding {
        guard maxLength >= 2 else { throw TokenizerError.invalidMaxLength(maxLength) }
        return assemble([Array(tokenize(text).prefix(maxLength - 2))])
    }

    /// `[CLS] first [SEP] second [SEP]`; only `second` is truncated (Hugging Face `truncation="only_second"`).
    public func encodePair(_ first: String, _ second: String, maxLength: Int) throws -> Encoding {
        let a = tokenize(first)
        let room = maxLength - 3 - a.count
        guard room > 0 else { throw TokenizerError.questionTooLong(tokens: a.count, maxLength: maxLength) }
        return assemble([a, Array(tokenize(second).prefix(room))])
    }

    /// True when token `id` continues a word (starts with the continuing-subword prefix, e.g. `##ing`).
    public func isContinuation(_ id: Int) -> Bool { id >= 0 && id < continuation.count && continuation[id] }

    private func assemble(_ sequences: [[Token]]) -> Encoding {
        var enc = Encoding(inputIds: [config.clsTokenId], attentionMask: [1], offsets: [[0, 0]], sequenceIds: [-1])
        for (index, tokens) in sequences.enumerated() {
            for t in tokens {
                enc.inputIds.append(t.id); enc.attentionMask.append(1); enc.offsets.append([t.start, t.end]); enc.sequenceIds.append(index)
            }
            enc.inputIds.append(config.sepTokenId); enc.attentionMask.append(1); enc.offsets.append([0, 0]); enc.sequenceIds.append(-1)
        }
        return enc
    }

    private func tokenize(_ text: String) -> [Token] {
        var tokens: [Token] = []
        for word in preTokenize(normalize(text)) { wordPiece(word, into: &tokens) }
        return tokens
    }

    private func normalize(_ text: String) -> Chars {
        var out = Chars()
        let strip = config.stripAccents ?? config.lowercase
        var offset = 0
        for scalar in text.unicodeScalars {
            let start = offset
            offset += scalar.utf16.count
            var cps: [Unicode.Scalar] = [scalar]
            if config.cleanText {
                if BertUnicode.isControl(scalar.value) { cps = [] }
                else if BertUnicode.isWhitespace(scalar.value) { cps = [" "] }
            }
            if config.tokenizeChineseChars, cps.count == 1, BertUnicode.isChinese(cps[0].value) { cps = [" ", cps[0], " "] }
            if strip {
                cps = cps.flatMap { Array(String($0).decomposedStringWithCanonicalMapping.unicodeScalars) }
                    .filter { !BertUnicode.isMark($0.value) }
            }
            if config.lowercase { cps = cps.flatMap { Array($0.properties.lowercaseMapping.unicodeScalars) } }
            for c in cps { out.cps.append(c.value); out.starts.append(start); out.ends.append(offset) }
        }
        return out
    }

    /// Words: runs of non-space, non-punctuation characters; each punctuation character is a word of its own.
    private func preTokenize(_ chars: Chars) -> [Chars] {
        var words: [Chars] = []
        var start = -1
        func slice(_ from: Int, _ until: Int) -> Chars {
            Chars(cps: Array(chars.cps[from..<until]), starts: Array(chars.starts[from..<until]), ends: Array(chars.ends[from..<until]))
        }
        func flush(_ until: Int) { if start >= 0 { words.append(slice(start, until)) }; start = -1 }
        for k in 0..<chars.cps.count {
            let cp = chars.cps[k]
            if BertUnicode.isWhitespace(cp) { flush(k) }
            else if BertUnicode.isPunctuation(cp) { flush(k); words.append(slice(k, k + 1)) }
            else if start < 0 { start = k }
        }
        flush(chars.cps.count)
        return words
    }

    private func wordPiece(_ word: Chars, into tokens: inout [Token]) {
        let n = word.cps.count
        let unk = Token(id: config.unkTokenId, start: word.starts[0], end: word.ends[n - 1])
        if n > config.maxInputCharsPerWord { tokens.append(unk); return }
        var pieces: [Token] = []
        var start = 0
        while start < n {
            var end = n
            var found: Token?
            while start < end {
                let piece = Array(word.cps[start..<end])
                if let id = ids[start > 0 ? prefix + piece : piece] {
                    found = Token(id: id, start: word.starts[start], end: word.ends[end - 1])
                    break
                }
                end -= 1
            }
            guard let token = found else { tokens.append(unk); return }
            pieces.append(token)
            start = end
        }
        tokens.append(contentsOf: pieces)
    }
}

/// Reads `vocab.txt` (one token per line; line n is id n), splitting on `\n` bytes only.
public func readVocab(_ data: Data) -> [String] {
    var lines = data.split(separator: 0x0A, omittingEmptySubsequences: false).map { line -> String in
        var bytes = Array(line)
        if bytes.last == 0x0D { bytes.removeLast() }
        return String(decoding: bytes, as: UTF8.self)
    }
    if lines.last == "" { lines.removeLast() }
    return lines
}

/// Character classes exactly as Hugging Face `tokenizers` defines them for BERT, from the generated
/// `BertCharTables` rather than the OS's Unicode tables (which differ between iOS releases).
enum BertUnicode {
    /// Is `cp` inside one of the inclusive ranges `[first, last, first, last, …]` (sorted)? Binary search.
    static func inRanges(_ ranges: [UInt32], _ cp: UInt32) -> Bool {
        var lo = 0
        var hi = ranges.count / 2 - 1
        while lo <= hi {
            let mid = (lo + hi) / 2
            if cp < ranges[2 * mid] { hi = mid - 1 }
            else if cp > ranges[2 * mid + 1] { lo = mid + 1 }
            else { return true }
        }
        return false
    }

    /// Whitespace the pre-tokenizer splits on (Rust `char::is_whitespace`).
    static func isWhitespace(_ cp: UInt32) -> Bool { inRanges(BertCharTables.whitespace, cp) }
    /// Removed by clean-up: control, format and private-use characters, U+0000, U+FFFD.
    static func isControl(_ cp: UInt32) -> Bool { inRanges(BertCharTables.control, cp) }
    /// Isolated as a word of its own by the pre-tokenizer.
    static func isPunctuation(_ cp: UInt32) -> Bool { inRanges(BertCharTables.punctuation, cp) }
    /// Non-spacing marks, removed by accent stripping after NFD.
    static func isMark(_ cp: UInt32) -> Bool { inRanges(BertCharTables.mark, cp) }
    /// CJK ideographs that BERT splits into single-character words.
    static func isChinese(_ cp: UInt32) -> Bool { inRanges(BertCharTables.chinese, cp) }
}
