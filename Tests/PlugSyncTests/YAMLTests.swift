import XCTest

@testable import PlugSync

/// The YAML reader (libyaml): values, marks (the editing commands depend on them) and errors.
final class YAMLTests: XCTestCase {
    /// A compact rendering: scalars as their text, maps as {k: v}, lists as [a, b].
    func render(_ node: YAML.Node?) -> String {
        guard let node else { return "nil" }
        switch node.kind {
        case .scalar(let scalar): return scalar.style == .plain ? scalar.string : "'\(scalar.string)'"
        case .sequence(let items): return "[" + items.map(render).joined(separator: ", ") + "]"
        case .mapping(let pairs):
            return "{" + pairs.map { render($0.key) + ": " + render($0.value) }.joined(separator: ", ") + "}"
        }
    }

    func parse(_ text: String) throws -> String { render(try YAML.compose(text)) }

    func assertFails(
        _ text: String, line: Int, _ contains: String, file: StaticString = #filePath, fileLine: UInt = #line
    ) {
        XCTAssertThrowsError(try YAML.compose(text), file: file, line: fileLine) { error in
            guard let error = error as? YAML.Error else { return XCTFail("\(error)", file: file, line: fileLine) }
            XCTAssertEqual(error.line, line, "\(error)", file: file, line: fileLine)
            XCTAssertTrue(error.problem.contains(contains), "\(error)", file: file, line: fileLine)
        }
    }

    func testBlockStructures() throws {
        XCTAssertEqual(try parse(""), "nil")
        XCTAssertEqual(try parse("# only a comment\n\n"), "nil")
        XCTAssertEqual(try parse("---\na: 1\n"), "{a: 1}")
        XCTAssertEqual(
            try parse("a: 1\nb:\n  c: x y  # comment\n  d: [p, 'q r', \"s\"]\n"),
            "{a: 1, b: {c: x y, d: [p, 'q r', 's']}}")
        XCTAssertEqual(try parse("l:\n- a\n- b: 1\n  c: 2\nz: end\n"), "{l: [a, {b: 1, c: 2}], z: end}")
        XCTAssertEqual(try parse("l:\n  -\n    a: 1\n  - - x\n    - y\n"), "{l: [{a: 1}, [x, y]]}")
        XCTAssertEqual(try parse("a:\nb: ~\n"), "{a: , b: ~}")
        XCTAssertEqual(try parse("a: 1\r\nb: 2\r\n"), "{a: 1, b: 2}")
        XCTAssertEqual(try parse("url: http://x/y#z\nkey: a:b\n"), "{url: http://x/y#z, key: a:b}")
        XCTAssertEqual(try parse("days: [mon,\n   tue,  # a comment inside\n   wed]\n"), "{days: [mon, tue, wed]}")
        XCTAssertEqual(try parse("m: {a: 1, b: [2, 3]}\ne: []\n"), "{m: {a: 1, b: [2, 3]}, e: []}")
    }

    func testScalars() throws {
        XCTAssertEqual(try parse("a: 'it''s # not a comment'\n"), "{a: 'it's # not a comment'}")
        XCTAssertEqual(try parse(#"a: "tab\tquote\" back\\ \x41\u00e9""#), "{a: 'tab\tquote\" back\\ Aé'}")
        XCTAssertEqual(try parse("a: 'one\n  two'\n"), "{a: 'one two'}")
        XCTAssertEqual(try parse("a: |\n  line 1\n   line 2\n\nb: 2\n"), "{a: 'line 1\n line 2\n', b: 2}")
        XCTAssertEqual(try parse("a: >-\n  folded\n  text\n\n  para\nb: 2\n"), "{a: 'folded text\npara', b: 2}")
        XCTAssertEqual(try parse("- ^~\\$\n- '\\.tmp$'\n"), "[^~\\$, '\\.tmp$']")
        // A plain value may go on over deeper-indented lines; they are joined with a space.
        XCTAssertEqual(try parse("a: one\n  two\nb: 2\n"), "{a: one two, b: 2}")
        XCTAssertEqual(try parse("- a\n  - b\n"), "[a - b]")
    }

    func testDocuments() throws {
        XCTAssertEqual(try parse("---\n"), "nil")
        XCTAssertEqual(try parse("\u{FEFF}a: 1\n...\n"), "{a: 1}")
        XCTAssertEqual(try parse("%YAML 1.1\n---\na: 1\n"), "{a: 1}")
        XCTAssertEqual(try parse("--- ''\n"), "''")
    }

    func testMarks() throws {
        let text = "definitions:\n  - name: a\n    type: mirror\n  - name: b\n    ignore: [x, y]\n"
        guard case .mapping(let top) = try XCTUnwrap(YAML.compose(text)).kind,
            case .sequence(let items) = top[0].value.kind
        else { return XCTFail() }
        XCTAssertEqual(items.map(\.mark), [YAML.Mark(line: 2, column: 5), YAML.Mark(line: 4, column: 5)])
        guard case .mapping(let second) = items[1].kind else { return XCTFail() }
        XCTAssertEqual(second[1].key.mark, YAML.Mark(line: 5, column: 5))
        XCTAssertEqual(second[1].value.mark, YAML.Mark(line: 5, column: 13))
    }

    /// Lines are counted at line feeds only, as the editing commands count them (libyaml also
    /// breaks lines at a lone CR, NEL and U+2028/U+2029); columns count characters.
    func testMarksCountLineFeeds() throws {
        let text = "a: \"x\u{2028}y\u{85}z\"\nb: [é, ü]\nc:\nd: 1\n"
        guard case .mapping(let top) = try XCTUnwrap(YAML.compose(text)).kind,
            case .sequence(let items) = top[1].value.kind
        else { return XCTFail() }
        XCTAssertEqual(top.map(\.key.mark?.line), [1, 2, 3, 4])
        XCTAssertEqual(items.map(\.mark), [YAML.Mark(line: 2, column: 5), YAML.Mark(line: 2, column: 8)])
        // An empty value is marked on its key's line.
        XCTAssertEqual(top[2].value.mark?.line, 3)
    }

    /// Marks far into a long text: on one long line of two-byte characters, and after many lines.
    func testMarksFarIn() throws {
        let items = 5_000
        let line = "l: [" + Array(repeating: "é", count: items).joined(separator: ", ") + "]\n"
        guard case .mapping(let top) = try XCTUnwrap(YAML.compose(line)).kind,
            case .sequence(let list) = top[0].value.kind
        else { return XCTFail() }
        XCTAssertEqual(list.map(\.mark), (0..<items).map { YAML.Mark(line: 1, column: 5 + 3 * $0) })
        var text = ""
        for i in 0..<3_000 {
            text += "k\(i): " + String(repeating: "ü", count: i % 7) + "\n" + (i % 3 == 0 ? "\n" : "")
        }
        guard case .mapping(let keys) = try XCTUnwrap(YAML.compose(text)).kind else { return XCTFail() }
        let expected = (0..<3_000).map { i in 1 + i + (i + 2) / 3 }
        XCTAssertEqual(keys.map { $0.key.mark?.line ?? 0 }, expected)
        XCTAssertEqual(keys[2_999].value.mark, YAML.Mark(line: expected[2_999], column: 8))
        assertFails(String(repeating: "\n", count: 100_000) + "a: [x,\n", line: 100_001, "'[' is never closed")
        assertFails(String(repeating: "ü\n", count: 10_000) + "\u{9F}", line: 10_001, "U+009F")
    }

    func testErrorsNameTheLine() {
        assertFails("a: 1\n\tb: 2\n", line: 2, "tabs")
        assertFails("a: 'open\nb: 2\n", line: 1, "never closed")
        assertFails("a: [x, y\nb: 2\n", line: 2, "expected ','")
        assertFails("a: [x, y\n", line: 1, "never closed")
        assertFails("a: &anchor 1\n", line: 1, "anchors")
        assertFails("a: !!str 1\n", line: 1, "tags")
        assertFails("a: 1\n b: 2\n", line: 2, "indentation")
        assertFails("a:\n  b: 1\n c: 2\n", line: 3, "indentation")
        assertFails("a: b: c\n", line: 1, "mapping values")
        assertFails("a: 1\n- b\n", line: 2, "list item")
        assertFails("a: \"\\q\"\n", line: 1, "escape")
        assertFails("a: 1\n---\nb: 2\n", line: 2, "one document")
        assertFails("a: 1\nb: *x\n", line: 2, "aliases")
        assertFails("l: !seq [a]\n", line: 1, "tags")
        assertFails("a: 1\n? b\n: 2\n", line: 2, "complex keys")
        assertFails("m: {[a, b]: 1}\n", line: 1, "complex keys")
        assertFails("a: {b: 1,\n  c: 2\n", line: 1, "'{' is never closed")
        assertFails("a: 1\nfoo\nb: 2\n", line: 2, "expected ':'")
        assertFails("a: 1\nb: 'x' y\n", line: 2, "unexpected text")
        assertFails("a: x\n  b: 2\n", line: 2, "indentation")
        assertFails("a: - b\n", line: 1, "list cannot start")
        assertFails("a: @x\n", line: 1, "cannot start with '@'")
        assertFails("a: |x\n  t\n", line: 1, "block scalar header")
        assertFails("a: [1]]\n", line: 1, "unexpected text")
        assertFails("a: [}\n", line: 1, "unexpected '}'")
        assertFails("a: [x, {b: [c,\n\n", line: 1, "'[' is never closed")
        assertFails("a: [x,\n  {b: 1,\n", line: 2, "'{' is never closed")
        assertFails("a: [x, 'y\n", line: 1, "quoted value is never closed")
        assertFails("%FOO x\n---\na: 1\n", line: 1, "directive")
    }

    /// Characters YAML does not allow, with the line they are on (counted in bytes by libyaml).
    func testCharactersThatAreNotAllowed() {
        assertFails("a: 1\nb: 2\u{0}\n", line: 2, "control character 0x00 is not allowed")
        assertFails("a: é\nb: ü\nc: x\u{80}\n", line: 3, "character U+0080 is not allowed")
        assertFails("a: \"\u{FFFE}\"\n", line: 1, "character U+FFFE is not allowed")
    }

    /// A hostile file: nesting deeper than the limit is refused at once, however deep it goes.
    func testDepthLimit() throws {
        let deep = YAML.maxDepth
        XCTAssertNoThrow(try YAML.compose(String(repeating: "[", count: deep) + String(repeating: "]", count: deep)))
        assertFails(
            "a:\n  " + String(repeating: "[", count: deep + 1) + String(repeating: "]", count: deep + 1), line: 2,
            "nested more than 64 levels deep")
        assertFails("a: " + String(repeating: "[", count: 1_000_000), line: 1, "nested more than 64 levels deep")
        // With a '?' in the text, which makes the reader look for explicit keys first.
        assertFails(
            "a: '?'\nb: " + String(repeating: "{a: ", count: 100_000), line: 2, "nested more than 64 levels deep")
        var block = ""
        for level in 0...deep { block += String(repeating: " ", count: 2 * level) + "-\n" }
        assertFails(block + String(repeating: " ", count: 2 * deep + 2) + "x\n", line: 65, "nested more than 64")
    }
}
