// libFuzzer entry point for the LIST and MLSD parsers (docs/RELIABILITY.md, case 6). Not part of any SwiftPM
// target: Tests/Fuzz/listing-fuzz compiles it with Sources/CurlFTP/FTPListing.swift into one
// module with `swiftc -sanitize=fuzzer,address` and runs it. The invariants are those of
// Tests/CurlFTPTests/ListingFuzzTests.swift: no crash, no negative size, no empty name, and every
// name the safe-name rule accepts holds no '/', control character or DEL and is not a dot entry.

@_cdecl("LLVMFuzzerTestOneInput")
public func listingFuzzOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let mlsd = FTPListingParser.parseMLSD(bytes).entries
    let list = FTPListingParser.parseLIST(bytes, serverNow: 1_795_420_800).entries
    for entry in mlsd + list {
        precondition(entry.size >= 0, "negative size")
        precondition(!entry.name.isEmpty, "empty name")
        if FTPListingParser.isSafeName(entry.name) {
            precondition(entry.name != [0x2e] && entry.name != [0x2e, 0x2e], "a dot entry passed the safe-name rule")
            precondition(
                !entry.name.contains(0x2f) && !entry.name.contains(where: { $0 < 0x20 || $0 == 0x7f }),
                "an unsafe name passed the safe-name rule")
        }
    }
    return 0
}
