// Compiled on x86-64 only: thunks/thunk.h selects the template of the target CPU.
#if defined(__x86_64__)
#include "thunks/thunk_x86_64.h"

#include <cstring>

namespace etwtrace::thunks {

namespace {

constexpr uint8_t kCode[kThunkCodeSize] = {
    0x55,              // push %rbp
    0x48, 0x89, 0xe5,  // mov  %rsp,%rbp
    0xff, 0xd1,        // call *%rcx
    0x5d,              // pop  %rbp
    0xc3,              // ret
};
static_assert(kThunkCodeSize + sizeof(uint64_t) == kThunkSize, "thunk = code + 8-byte salt");

// DWARF constants (DWARF 4 section 7.23/7.24, LSB exception-frame encodings).
constexpr uint8_t DW_CFA_advance_loc = 0x40;   // | delta
constexpr uint8_t DW_CFA_offset = 0x80;        // | reg, uleb offset
constexpr uint8_t DW_CFA_restore = 0xc0;       // | reg
constexpr uint8_t DW_CFA_nop = 0x00;
constexpr uint8_t DW_CFA_def_cfa = 0x0c;
constexpr uint8_t DW_CFA_def_cfa_register = 0x0d;
constexpr uint8_t DW_CFA_def_cfa_offset = 0x0e;
constexpr uint8_t DW_EH_PE_udata4 = 0x03;
constexpr uint8_t DW_EH_PE_sdata4 = 0x0b;
constexpr uint8_t DW_EH_PE_pcrel = 0x10;
constexpr uint8_t DW_EH_PE_datarel = 0x30;
constexpr uint8_t kRsp = 7, kRbp = 6, kRa = 16;  // x86-64 DWARF register numbers

constexpr size_t align_up(size_t value, size_t to) { return (value + to - 1) / to * to; }

void put_u32(std::vector<uint8_t>& out, uint32_t value) {
    for (int i = 0; i < 4; ++i) {
        out.push_back(static_cast<uint8_t>(value >> (8 * i)));
    }
}
void put_i32(std::vector<uint8_t>& out, int32_t value) { put_u32(out, static_cast<uint32_t>(value)); }
void patch_u32(std::vector<uint8_t>& out, size_t at, uint32_t value) {
    for (int i = 0; i < 4; ++i) {
        out[at + i] = static_cast<uint8_t>(value >> (8 * i));
    }
}
void pad_to(std::vector<uint8_t>& out, size_t start, size_t alignment) {
    while ((out.size() - start) % alignment != 0) {
        out.push_back(DW_CFA_nop);
    }
}

UnwindInfo build_unwind_info() {
    UnwindInfo info;
    std::vector<uint8_t>& out = info.data;
    const size_t text_to_eh_frame = align_up(kThunkSize, 8);  // genelf: ALIGN_8(text + csize)

    // CIE: the state at a thunk's first instruction (like any function entry).
    const size_t cie = out.size();
    put_u32(out, 0);                  // length, patched below
    put_u32(out, 0);                  // CIE id
    out.push_back(1);                 // version
    out.insert(out.end(), {'z', 'R', 0});
    out.push_back(1);                 // code alignment factor
    out.push_back(0x78);              // data alignment factor: -8 (sleb128)
    out.push_back(kRa);               // return address register
    out.push_back(1);                 // augmentation data length
    out.push_back(DW_EH_PE_pcrel | DW_EH_PE_sdata4);  // FDE pointer encoding
    out.insert(out.end(), {DW_CFA_def_cfa, kRsp, 8});           // CFA = rsp + 8
    out.insert(out.end(), {uint8_t(DW_CFA_offset | kRa), 1});  // ra at CFA - 8
    pad_to(out, cie, 8);
    patch_u32(out, cie, static_cast<uint32_t>(out.size() - cie - 4));

    // FDE: one row per instruction boundary of the thunk.
    const size_t fde = out.size();
    put_u32(out, 0);                                             // length, patched below
    put_u32(out, static_cast<uint32_t>(out.size() - cie));       // CIE pointer (back from here)
    // pc_begin, pc-relative: the text starts text_to_eh_frame bytes before .eh_frame.
    put_i32(out, -static_cast<int32_t>(text_to_eh_frame + out.size()));
    put_u32(out, static_cast<uint32_t>(kThunkSize));              // pc_range
    out.push_back(0);                                            // augmentation data length
    out.insert(out.end(), {uint8_t(DW_CFA_advance_loc | 1),      // after push %rbp
                           DW_CFA_def_cfa_offset, 16,
                           uint8_t(DW_CFA_offset | kRbp), 2,     // rbp at CFA - 16
                           uint8_t(DW_CFA_advance_loc | 3),      // after mov %rsp,%rbp
                           DW_CFA_def_cfa_register, kRbp,        // CFA = rbp + 16
                           uint8_t(DW_CFA_advance_loc | 3),      // after pop %rbp (at ret)
                           DW_CFA_def_cfa, kRsp, 8,
                           uint8_t(DW_CFA_restore | kRbp)});
    pad_to(out, fde, 8);
    patch_u32(out, fde, static_cast<uint32_t>(out.size() - fde - 4));
    const size_t eh_frame_size = out.size();

    // .eh_frame_hdr: a one-entry binary-search table.
    const size_t hdr = out.size();
    out.push_back(1);                                            // version
    out.push_back(DW_EH_PE_pcrel | DW_EH_PE_sdata4);             // eh_frame_ptr encoding
    out.push_back(DW_EH_PE_udata4);                              // fde_count encoding
    out.push_back(DW_EH_PE_datarel | DW_EH_PE_sdata4);           // table encoding
    put_i32(out, -static_cast<int32_t>(out.size()));             // eh_frame_ptr: back to .eh_frame
    put_u32(out, 1);                                             // fde_count
    put_i32(out, -static_cast<int32_t>(text_to_eh_frame + hdr)); // initial location (the thunk)
    put_i32(out, -static_cast<int32_t>(hdr - fde));              // its FDE
    info.eh_frame_hdr_size = out.size() - hdr;
    (void)eh_frame_size;
    info.mapped_size = align_up(out.size(), 16);
    return info;
}

}  // namespace

void write_thunk(uint8_t* dst, uint64_t salt) {
    std::memcpy(dst, kCode, sizeof(kCode));
    std::memcpy(dst + sizeof(kCode), &salt, sizeof(salt));
}

const UnwindInfo& thunk_unwind_info() {
    static const UnwindInfo info = build_unwind_info();
    return info;
}

size_t thunk_stride() {
    return align_up(align_up(kThunkSize, 8) + thunk_unwind_info().mapped_size, 16);
}

}  // namespace etwtrace::thunks

#endif  // __x86_64__
