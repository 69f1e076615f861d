import ArgumentParser
import CofreAPI
import CofreClient
import CofreCore
import Foundation

/// `cofre subject import FILE`: a portfolio of debtors into the vault, through `POST /v1/subjects/batch`
/// with a service key (COFRE_TOKEN, a service with `tokenize`). CSV (a header row: `external_ref` and
/// field names) or JSON Lines (`{"external_ref":"…","fields":{…}}` per line). Streams the file, so its
/// size does not matter. Re-running after an interruption imports only what is missing: subjects
/// already in the vault answer `subject_exists` and are counted as already present. Rejected rows go
/// to a report file (line number, code and the vault's message — never a value).
struct ImportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import", abstract: "Import subjects from CSV or JSON Lines (a service with tokenize; COFRE_TOKEN, COFRE_ADDR).")
    @OptionGroup var client: ClientOptions
    @Argument(help: "The file: .csv, or .jsonl / .ndjson (JSON Lines).") var file: String
    @Option(help: "csv or jsonl (default: from the file name).") var format: String?
    @Option(help: "Subjects per request, 1 to 1000.") var batch: Int = 500
    @Option(help: "Where to write rejected rows (default: FILE.rejected.txt; mode 0600).") var report: String?
    @Flag(help: "Replace an existing report file.") var force = false

    func run() async throws {
        guard (1...Vault.maxSubjectsPerBatch).contains(batch) else { throw CLIError("--batch must be 1 to \(Vault.maxSubjectsPerBatch)") }
        let kind = format ?? (file.hasSuffix(".csv") ? "csv" : (file.hasSuffix(".jsonl") || file.hasSuffix(".ndjson") ? "jsonl" : ""))
        guard kind == "csv" || kind == "jsonl" else { throw CLIError("--format must be csv or jsonl (cannot tell from '\(file)')") }
        guard let input = FileHandle(forReadingAtPath: file) else { throw CLIError("no such file: '\(file)'") }
        let total = try Self.countLines(file) - (kind == "csv" ? 1 : 0)
        try await VaultConnection.with(client) { vault in try await importFile(input, kind: kind, total: total, vault: vault) }
    }

    func importFile(_ input: FileHandle, kind: String, total: Int, vault: CofreClient) async throws {
        let reportPath = report ?? file + ".rejected.txt"
        var rejected: [String] = []
        var progress = Progress(total: max(total, 0))
        var pending: [(line: Int, row: CreateSubjectRequest)] = []

        func flush() async throws {
            guard !pending.isEmpty else { return }
            let results = try await vault.createSubjects(pending.map(\.row)).results
            guard results.count == pending.count else { throw CLIError("the vault answered a batch with \(results.count) results for \(pending.count) subjects") }
            for (item, result) in zip(pending, results) {
                if let error = result.error {
                    if error.code == .subjectExists {
                        progress.present += 1
                    } else {
                        progress.rejected += 1
                        rejected.append("line \(item.line): \(Terminal.escape(error.code.rawValue)): \(Terminal.escape(error.message))")
                    }
                } else {
                    progress.imported += 1
                }
            }
            pending.removeAll(keepingCapacity: true)
            progress.draw()
        }

        var lineNumber = 0
        var header: [String]?
        var reader = LineReader(input)
        while let line = try reader.next() {
            lineNumber += 1
            if line.trimmingCharacters(in: .whitespaces).isEmpty { continue }
            if kind == "csv", header == nil {
                header = CSV.split(line).map { $0.trimmingCharacters(in: .whitespaces) }
                guard header?.first == "external_ref" else { throw CLIError("'\(file)': the first column of the header must be external_ref") }
                continue
            }
            let row: CreateSubjectRequest?
            if kind == "csv" {
                let cells = CSV.split(line)
                if cells.count != header!.count {
                    row = nil
                    rejected.append("line \(lineNumber): malformed_row: \(cells.count) columns, the header has \(header!.count)")
                } else {
                    var fields: [String: String] = [:]
                    for (name, cell) in zip(header!.dropFirst(), cells.dropFirst()) where !cell.isEmpty { fields[name] = cell }
                    row = CreateSubjectRequest(externalRef: cells[0], fields: fields)
                }
            } else if let object = try? RequestDecoding.decode(CreateSubjectRequest.self, from: Data(line.utf8)) {
                row = object
            } else {
                row = nil
                rejected.append("line \(lineNumber): malformed_row: expected {\"external_ref\":\"…\",\"fields\":{\"name\":\"value\",…}}")
            }
            if let row { pending.append((lineNumber, row)) } else { progress.rejected += 1 }
            if pending.count >= batch { try await flush() }
        }
        try await flush()
        progress.finish()
        if !rejected.isEmpty {
            try await PrivateFile.write(to: reportPath, force: force, contents: Data((rejected.joined(separator: "\n") + "\n").utf8))
        }
        print("imported \(progress.imported), already present \(progress.present), rejected \(progress.rejected)"
              + (rejected.isEmpty ? "" : " (see \(reportPath))"))
        if progress.rejected > 0 { throw ExitCode(3) }
    }

    static func countLines(_ path: String) throws -> Int {
        guard let h = FileHandle(forReadingAtPath: path) else { throw CLIError("no such file: '\(path)'") }
        defer { try? h.close() }
        var n = 0
        while let chunk = try h.read(upToCount: 1 << 20), !chunk.isEmpty { n += chunk.reduce(0) { $0 + ($1 == 10 ? 1 : 0) } }
        return n
    }

    /// A progress bar with rate and ETA on a terminal; nothing until the summary otherwise.
    struct Progress {
        let total: Int
        var imported = 0, present = 0, rejected = 0
        let started = Date()
        let terminal = isatty(2) == 1
        var done: Int { imported + present + rejected }

        func draw() {
            guard terminal, total > 0 else { return }
            let fraction = min(1, Double(done) / Double(total))
            let elapsed = max(Date().timeIntervalSince(started), 0.001)
            let rate = Double(done) / elapsed
            let eta = rate > 0 ? Int(Double(total - done) / rate) : 0
            let bar = String(repeating: "#", count: Int(fraction * 30)) + String(repeating: " ", count: 30 - Int(fraction * 30))
            FileHandle.standardError.write(Data(String(format: "\r[%@] %3.0f%% %d/%d  %.0f/s  ETA %d:%02d ", bar, fraction * 100, done, total,
                                                       rate, eta / 60, eta % 60).utf8))
        }

        func finish() {
            if terminal, total > 0 { FileHandle.standardError.write(Data("\n".utf8)) }
        }
    }
}

/// Reads a file line by line in 1 MiB chunks (bounded memory, whatever the file's size).
struct LineReader {
    let handle: FileHandle
    var buffer: [UInt8] = []
    var start = 0
    var eof = false

    init(_ handle: FileHandle) { self.handle = handle }

    mutating func next() throws -> String? {
        while true {
            if let nl = buffer[start...].firstIndex(of: 10) {
                var line = Array(buffer[start..<nl])
                start = nl + 1
                if line.last == 13 { line.removeLast() }
                return String(decoding: line, as: UTF8.self)
            }
            if eof {
                guard start < buffer.count else { return nil }
                let rest = String(decoding: buffer[start...], as: UTF8.self)
                start = buffer.count
                return rest
            }
            buffer.removeFirst(start)
            start = 0
            if let chunk = try handle.read(upToCount: 1 << 20), !chunk.isEmpty { buffer += chunk } else { eof = true }
        }
    }
}

/// Just enough CSV (RFC 4180; a cell may not span lines): commas, double-quoted cells with doubled quotes inside.
enum CSV {
    static func split(_ line: String) -> [String] {
        var cells: [String] = []
        var cell = ""
        var quoted = false
        var chars = line.makeIterator()
        while let c = chars.next() {
            if quoted {
                if c == "\"" {
                    // A doubled quote is a quote; a single one closes the cell.
                    var lookahead = chars
                    if lookahead.next() == "\"" { cell.append("\""); chars = lookahead } else { quoted = false }
                } else {
                    cell.append(c)
                }
            } else if c == "\"" {
                quoted = true
            } else if c == "," {
                cells.append(cell)
                cell = ""
            } else {
                cell.append(c)
            }
        }
        cells.append(cell)
        return cells
    }
}
