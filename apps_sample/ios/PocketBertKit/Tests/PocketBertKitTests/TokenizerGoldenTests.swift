import XCTest
@testable import PocketBertKit

/// The tokenizer reproduces every golden vector of the Hugging Face fast tokenizer, uncased and cased.
final class TokenizerGoldenTests: XCTestCase {
    func testGoldensCoverAnUncasedAndACasedVocabulary() throws {
        let files = try Goldens.tokenizerFiles()
        let lowercase = try files.map { try (Goldens.json($0)["tokenizer"] as! [String: Any])["lowercase"] as! Bool }
        XCTAssertTrue(lowercase.contains(true), "need an uncased golden file, found \(files)")
        XCTAssertTrue(lowercase.contains(false), "need a cased golden file, found \(files)")
    }

    func testEveryCaseMatchesInputIdsMaskOffsetsAndBucket() throws {
        var checked = 0
        var failures: [String] = []
        for file in try Goldens.tokenizerFiles() {
            let golden = try Goldens.json(file)
            let tokenizer = try Goldens.tokenizer(golden)
            let buckets = ints(golden["buckets"])
            for case let c as [String: Any] in golden["cases"] as! [Any] {
                let text = c["text"] as! String
                let maxLength = c["max_length"] as! Int
                let raw = try (c["text_pair"] as? String).map { try tokenizer.encodePair(text, $0, maxLength: maxLength) }
                    ?? tokenizer.encode(text, maxLength: maxLength)
                let bucket = try chooseBucket(raw.length, buckets)
                let enc = raw.padded(to: bucket, padTokenId: tokenizer.config.padTokenId)
                let offsets = (c["offsets"] as! [[NSNumber]]).map { $0.map(\.intValue) }
                let name = "\(file) '\(text.prefix(40))' (max \(maxLength))"
                if bucket != c["pad_to"] as! Int { failures.append("\(name): bucket \(bucket)") }
                else if enc.inputIds != ints(c["input_ids"]) { failures.append("\(name): ids \(enc.inputIds), expected \(ints(c["input_ids"]))") }
                else if enc.attentionMask != ints(c["attention_mask"]) { failures.append("\(name): attention mask differs") }
                else if enc.offsets != offsets { failures.append("\(name): offsets \(enc.offsets), expected \(offsets)") }
                checked += 1
            }
        }
        XCTAssertGreaterThan(checked, 0, "no golden cases found in \(Goldens.dir.path)")
        XCTAssertEqual(failures.count, 0, "\(failures.count) of \(checked) golden cases differ:\n" + failures.prefix(5).joined(separator: "\n"))
    }

    func testTruncationKeepsClsAndSep() throws {
        let tokenizer = try Goldens.tokenizer(Goldens.json(Goldens.tokenizerFiles()[0]))
        let enc = try tokenizer.encode("one two three four five six", maxLength: 4)
        XCTAssertEqual(enc.length, 4)
        XCTAssertEqual(enc.inputIds.first, tokenizer.config.clsTokenId)
        XCTAssertEqual(enc.inputIds.last, tokenizer.config.sepTokenId)
    }

    func testPadToAddsPaddingWithZeroMask() throws {
        let tokenizer = try Goldens.tokenizer(Goldens.json(Goldens.tokenizerFiles()[0]))
        let enc = try tokenizer.encode("hello", maxLength: 16).padded(to: 8, padTokenId: tokenizer.config.padTokenId)
        XCTAssertEqual(enc.inputIds.count, 8)
        XCTAssertEqual(Array(enc.inputIds[enc.length...]), Array(repeating: tokenizer.config.padTokenId, count: 8 - enc.length))
        XCTAssertEqual(enc.attentionMask.reduce(0, +), enc.length)
    }

    func testAQuestionThatFillsTheWindowIsRefused() throws {
        let tokenizer = try Goldens.tokenizer(Goldens.json(Goldens.tokenizerFiles()[0]))
        XCTAssertThrowsError(try tokenizer.encodePair("a b c d e f g h i j", "context", maxLength: 8))
    }
}

/// The embedded character tables equal Hugging Face's classes for every code point (fresh `charclasses.json`).
final class CharClassTests: XCTestCase {
    func testEveryCodePointIsClassifiedAsHuggingFaceDoes() throws {
        let golden = try Goldens.json("charclasses.json")
        let checks: [(String, (UInt32) -> Bool)] = [
            ("control", BertUnicode.isControl), ("whitespace", BertUnicode.isWhitespace),
            ("punctuation", BertUnicode.isPunctuation), ("mark", BertUnicode.isMark), ("chinese", BertUnicode.isChinese),
        ]
        for (name, check) in checks {
            let ranges = (golden[name] as! [[NSNumber]]).map { $0[0].uint32Value...$0[1].uint32Value }
            XCTAssertFalse(ranges.isEmpty, "no \(name) ranges in charclasses.json")
            var members = [Bool](repeating: false, count: 0x110000)
            for r in ranges { for cp in r { members[Int(cp)] = true } }
            let wrong = (UInt32(0)..<0x110000).filter { !(0xD800...0xDFFF).contains($0) && check($0) != members[Int($0)] }
            XCTAssertEqual(wrong.count, 0, "\(name) differs at \(wrong.prefix(10).map { String($0, radix: 16) })")
        }
    }
}
