import SyncEngine

/// `plugsync verify`: a definition's destination compared with its source by content.
public struct Verification {
    public struct Options {
        /// Percent of the source's files to compare (0 < sample <= 100).
        public var sample = 100.0
        /// The sample's seed; nil: a new one (the report names it, to repeat the same sample).
        public var seed: UInt64?
        public init() {}
    }

    public struct Result {
        public var report: Verifier.Report
        public var seed: UInt64
        public var source: String
        public var destination: String
    }

    public init() {}

    /// Resolves both endpoints as a run does (a drive found by its identity and File Check, a
    /// server logged in to), then compares. Throws what a run's resolution throws
    /// (`PreconditionError` for an absent drive or a failed File Check: exit 3).
    public func verify(_ definition: Definition, options: Options) throws -> Result {
        var verifier = Verifier()
        verifier.ignore = try IgnoreList(definition.ignore)
        verifier.recursive = definition.recursive
        verifier.extrasAreDifferences = definition.type == .mirror
        verifier.sample = options.sample
        let seed = options.seed ?? UInt64.random(in: 1...999_999)
        verifier.seed = seed
        let resolver = EndpointResolver()
        let connections = definition.parallel ?? 4
        let source = try resolver.resolve(definition.source, role: "source", connections: connections)
        defer { source.endpoint.disconnect() }
        let destination = try resolver.resolve(definition.destination, role: "destination", connections: connections)
        defer { destination.endpoint.disconnect() }
        let report = verifier.verify(
            source: source.endpoint, sourceExcluded: source.excluded, destination: destination.endpoint,
            destinationExcluded: destination.excluded)
        return Result(
            report: report, seed: seed, source: source.endpoint.displayName,
            destination: destination.endpoint.displayName)
    }
}
