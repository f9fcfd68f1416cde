extension ConfigValidator {
    /// `logging.level`, `SLUICE_LOG_LEVEL` or `--log-level`, in any case (default `info`).
    mutating func logLevel(_ section: ConfigFile.LoggingSection?) -> SluiceConfig.LogLevel {
        let setting = self.settings.resolve(
            "logging.level", flag: ("--log-level", self.overrides.logLevel), env: "SLUICE_LOG_LEVEL", file: section?.level, default: "info"
        )
        guard let level = SluiceConfig.LogLevel(rawValue: setting.value.lowercased()) else {
            self.fail(setting, "must be one of \(ConfigLoader.logLevels.joined(separator: ", "))")
            return .info
        }
        return level
    }

    /// `logging.format` or `SLUICE_LOG_FORMAT`, in any case (default `json`).
    mutating func logFormat(_ section: ConfigFile.LoggingSection?) -> SluiceConfig.LogFormat {
        let setting = self.settings.resolve("logging.format", env: "SLUICE_LOG_FORMAT", file: section?.format, default: "json")
        guard let format = SluiceConfig.LogFormat(rawValue: setting.value.lowercased()) else {
            // Unlike other settings, the key path is named whenever the file has the key, even
            // when the variable won (then both are named).
            self.fail(section?.format == nil ? "" : "logging.format", "must be json or text", source: setting.problemLocation().source)
            return .json
        }
        return format
    }
}
