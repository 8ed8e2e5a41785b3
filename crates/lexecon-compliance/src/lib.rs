//! Compliance mapping.
//!
//! Owns control catalogs (SOC 2, ISO/IEC 27001, GDPR, HIPAA, PCI DSS, NIST CSF, EU AI
//! Act), the mapping of ledger evidence to controls, gap analysis, and the EU AI Act
//! article 11, 12 and 14 reports. Pure: it reads evidence it is given.
