import XCTest

@testable import PlugSync

/// The YAML subset reader: values, marks (the editing commands depend on them) and errors.
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
        assertFails("a: one\n  two\n", line: 2, "continued")
        assertFails("a: 1\n- b\n", line: 2, "list item")
        assertFails("a: \"\\q\"\n", line: 1, "escape")
        assertFails("a: 1\n---\nb: 2\n", line: 2, "one document")
    }
}
