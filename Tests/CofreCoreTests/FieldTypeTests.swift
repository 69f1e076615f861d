import CofreCore
import Foundation
import Testing

@Suite("Field types: validation and normalisation")
struct FieldTypeTests {
    @Test("accepted values normalise", arguments: [
        (FieldType.cpf, "123.456.789-09", "12345678909"),
        (.cpf, "12345678909", "12345678909"),
        (.cpf, " 529.982.247-25 ", "52998224725"),
        (.phone, "+55 11 98765-4321", "+5511987654321"),
        (.phone, "(11) 98765-4321", "+5511987654321"),
        (.phone, "11987654321", "+5511987654321"),
        (.phone, "5511987654321", "+5511987654321"),
        (.phone, "011 98765-4321", "+5511987654321"),
        (.phone, "(21) 3456-7890", "+552134567890"),
        (.phone, "+1 415 555 2671", "+14155552671"),
        (.email, "Joao.Silva@Example.COM", "joao.silva@example.com"),
        (.date, "1985-02-28", "1985-02-28"),
        (.date, "2000-02-29", "2000-02-29"),
        (.decimal, "1234.50", "1234.50"),
        (.decimal, "0007", "7"),
        (.decimal, "-0.00", "0.00"),
        (.text, "  Rua das Flores, 10  ", "Rua das Flores, 10"),
    ])
    func accepted(_ type: FieldType, _ input: String, _ normalized: String) throws {
        #expect(try type.normalize(input, field: "f") == normalized)
    }

    @Test("rejected values fail with invalid_<type> and the field name, never the value", arguments: [
        (FieldType.cpf, "123.456.789-00"), (.cpf, "111.111.111-11"), (.cpf, "1234567890"), (.cpf, "abc.def.ghi-jk"),
        (.phone, "98765-4321"), (.phone, "+55 01 98765-4321"), (.phone, "(11) 88765-4321x"), (.phone, "+55 11 88765-4321"),
        (.phone, "+0 123"), (.email, "no-at-sign"), (.email, "a@b"), (.email, "a b@c.com"), (.email, "@example.com"),
        (.date, "1985-02-30"), (.date, "1900-02-29"), (.date, "85-02-01"), (.date, "2020-13-01"),
        (.decimal, "12,50"), (.decimal, "1e5"), (.decimal, "1.1234567"), (.decimal, ""), (.text, "   "), (.text, "a\u{0}b"),
    ])
    func rejected(_ type: FieldType, _ input: String) throws {
        let error = try #require(throws: VaultError.self) { try type.normalize(input, field: "thefield") }
        #expect(error.code.rawValue == "invalid_\(type.rawValue)")
        #expect(error.kind == .unprocessable)
        #expect(error.field == "thefield")
        if input.trimmingCharacters(in: .whitespaces).count > 2 {
            #expect(!error.message.contains(input.trimmingCharacters(in: .whitespaces)))
        }
    }
}

@Suite("Masks (CONTRACT §2)")
struct MaskingTests {
    @Test("each type's mask", arguments: [
        (FieldType.cpf, "12345678909", "***.456.789-**"),
        (.phone, "+5511987654321", "+55 11 *****-4321"),
        (.phone, "+552134567890", "+55 21 ****-7890"),
        (.email, "joao@example.com", "j***@example.com"),
        (.text, "João da Silva", "J*** d*** S***"),
        (.date, "1985-02-28", "1985-**-**"),
    ])
    func masks(_ type: FieldType, _ value: String, _ masked: String) {
        #expect(Masking.mask(value, type: type) == masked)
    }

    @Test("a decimal has no masked form (answered as redacted)")
    func decimal() {
        #expect(Masking.mask("1234.50", type: .decimal) == nil)
    }
}

