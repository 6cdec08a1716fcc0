"""Reporting: statistics frames (pandas, from the Spark job) -> CSV, summary.json, PDF, e-mail.

Public API (import from the submodules; nothing heavy is imported here):
``model.ReportData``, ``outputs.write_outputs / statistics_csv / summary_dict``, ``pdf.build_pdf``,
``email.EmailConfig / build_message``, ``delivery.OutboxSender / SesSender / deliver``,
``ledger.EmailLedger``, ``units.find_peak / format_peak``, ``sample.sample_report_data``.
Never imports pyspark and never reads environment variables: configuration comes in as arguments.
"""
