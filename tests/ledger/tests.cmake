kubehsm_test(ledger_test LABEL unit SOURCES ledger/ledger_test.cc ledger/audit_log_test.cc LIBS kubehsm::ledger)
