import Foundation
import PackagePlugin

/// Writes BuildInfo.swift (the git commit of the package's checkout) for the
/// `ftap` target. A build command whose inputs are the files git changes on
/// a commit or checkout (HEAD, the branch's ref, packed-refs), so it runs
/// again exactly when the commit changes. No network: the script reads the
/// local repository with git (a tree without .git says "unknown", or
/// FTAP_COMMIT when set).
@main
struct BuildInfoPlugin: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        let pkg = context.package.directoryURL
        let out = context.pluginWorkDirectoryURL.appendingPathComponent("BuildInfo.swift")
        let script = pkg.appendingPathComponent("scripts/build-info.sh")
        return [.buildCommand(
            displayName: "ftap build info (git commit)",
            executable: URL(fileURLWithPath: "/bin/sh"),
            arguments: [script.path, pkg.path, out.path],
            inputFiles: [script] + gitFiles(pkg),
            outputFiles: [out])]
    }

    /// The files that change when HEAD moves: HEAD itself, the ref it names,
    /// packed-refs. Handles worktrees (.git is a file naming the git dir).
    func gitFiles(_ pkg: URL) -> [URL] {
        let fm = FileManager.default
        var gitDir = pkg.appendingPathComponent(".git")
        var isDir: ObjCBool = false
        guard fm.fileExists(atPath: gitDir.path, isDirectory: &isDir) else { return [] }
        if !isDir.boolValue {
            guard let text = try? String(contentsOf: gitDir, encoding: .utf8),
                  let line = text.split(separator: "\n").first(where: { $0.hasPrefix("gitdir: ") }) else { return [] }
            let p = String(line.dropFirst("gitdir: ".count))
            gitDir = p.hasPrefix("/") ? URL(fileURLWithPath: p) : pkg.appendingPathComponent(p)
        }
        var common = gitDir
        if let c = try? String(contentsOf: gitDir.appendingPathComponent("commondir"), encoding: .utf8) {
            let p = c.trimmingCharacters(in: .whitespacesAndNewlines)
            common = p.hasPrefix("/") ? URL(fileURLWithPath: p) : gitDir.appendingPathComponent(p)
        }
        var files = [gitDir.appendingPathComponent("HEAD")]
        if let head = try? String(contentsOf: files[0], encoding: .utf8), head.hasPrefix("ref: ") {
            let ref = head.dropFirst(5).trimmingCharacters(in: .whitespacesAndNewlines)
            files.append(common.appendingPathComponent(ref))
        }
        files.append(common.appendingPathComponent("packed-refs"))
        return files.filter { fm.fileExists(atPath: $0.path) }
    }
}
