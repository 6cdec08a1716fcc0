-- Why lines were rejected on one UTC date, per distribution (damaged files have no line number).
--   cdnlake sql -f docs/queries/rejects_by_reason.sql --date 2024-05-01
SELECT
  distro,
  reason,
  count(*)                                     AS rejected,
  count(DISTINCT source_file)                  AS files,
  min(element_at(split(source_file, '/'), -1)) AS example_file
FROM cdn_logs_rejects
WHERE dt = '${date}'
GROUP BY distro, reason
ORDER BY rejected DESC, reason
