public import Hummingbird
import Logging

/// The per-request context: Hummingbird's core storage plus Cofre's request id.
public struct CofreRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// Random per request; goes into logs, error bodies and audit events.
    public var requestID: String

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        requestID = ""
    }

    /// CONTRACT §4: bodies over 1 MiB are refused with 413.
    public var maxUploadSize: Int { 1 << 20 }
}
