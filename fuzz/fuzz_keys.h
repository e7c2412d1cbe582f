// Fixed software keys for the fuzz targets, so committed seed tokens stay verifiable. Generated
// with `openssl genpkey`; test material only, never used outside fuzz/.
#pragma once

namespace kubehsm::fuzz {

inline constexpr char kEcP256KeyPem[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgbnsV5UgveH5nMzTs\n"
    "aP83S26ST0b7eYERr/ZgdhzdtVahRANCAATruPgVWOSeetfMxDMI6rnxGhoEosJC\n"
    "APr52Fe7c0yAs1o4POXdB7reUvcgGBi7dBeZP21N0RdtGEOKFfUwc0pr\n"
    "-----END PRIVATE KEY-----\n";

inline constexpr char kRsa2048KeyPem[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MIIEvAIBADANBgkqhkiG9w0BAQEFAASCBKYwggSiAgEAAoIBAQCYmRmVJf9qiwAI\n"
    "J1S/lDYtgLlLWivyfLTSj2ob1UclT6Mv2q3aMxy6aFPFPrDajL82GzLG/Z4CFrXV\n"
    "Ox6Ix+Xin701bQAlhf3D/W3E/Gx1DEOdPXE9qKTaBMrQfhbuHiLDxYEPH+zEp8IZ\n"
    "/7jubzA0342YaT4K6cOHh/KZHz8BlIrQbshwtpW8P0eDe/zdLBn1W895hF9BrHWR\n"
    "VhO20/VF11CzL4RKAA4dn8I49sgrBtWye/5eNIIGyENFDGg4MmGK2hGAyMzEEeLW\n"
    "Aa9HhzuwQ7sgGg1fdYZhKwKu+lGtv4pbjGbsnL4SskRx5+J43gbFY8+RaS9kMjSv\n"
    "NdDeqdCXAgMBAAECggEAI717+exP4a7Tn5VCqqo2dDrZazYf4+fkXAqd8g3mX21D\n"
    "DcK8hEYDXP9xW1m/Bzj+0dfV8ThWaSvTg7EYijWzeHwsTxaL+b3jvSMesgvjBRkN\n"
    "vwa0fpoAnlWQAPv/N98UCmE4RIgYJskZ04gK0sF0+3U+jytbDihJFPW40rc4RRCe\n"
    "RFxtJcNSho4UdTdl4LyS78mDgDGPvbIImM6hToUTXEOLWf3KOckQuL72C0ZeNQKz\n"
    "fvRnOQznfZ9pJBuiNc8UDiN89cStaRTpwI/gV+8EH58HW60sVTCqwl4IevuTOLrR\n"
    "LDLo6OP6HoZALfb2VWyoTCenR6/CkFwWG7tFI5HyRQKBgQDKVvgfxJ9jwZtEREU5\n"
    "jix6teNEibLD3QMNEpFi3vxI3t3kRsPaEamajJSy/Xm2axzEZV7MHNFgPXMrz+Sv\n"
    "kDJvls5CXZO4OXF6cymCjyt9x87HOYVpAqwNK/+lKXbmzex8eXJ8YfgAzQBD7FvM\n"
    "jBaVaMdea6lUqClKNBgve9YxbQKBgQDBER9OrrwNmRBaaxJAyKYu21QHldCGJj9y\n"
    "kkci6yp9ih/7NlKpL006dKdx5VkJYzxfrV1nZp5wQZ3DDLRFOnHxJi3/XcDfcUup\n"
    "Mo8tJgtE6invZOqeCRAn7TLbNyzwM7kJvy0NbVVtN634i8QJHBYo22Pnh/MAe7rj\n"
    "XMfGHSLLkwKBgAcPl+ML6oABrphoRX4nrvetRzwKDhn1qXiYUEiB/Y3RcS7ZJVaD\n"
    "zUZeZ4YDgG7UOBHGc9NtogTYwB8kRxe1UX1BZvs75r7ECmi6ghVTR7JA+b9MC5LJ\n"
    "jBV9lpM96i9NulXxqwQaKxxkCwFTyzRNIzCdkm+CFEum/qHfRYTKroPVAoGACn2M\n"
    "rvDNpQuBGPiiaES+yuL+AN+CEhf38JjEJsCScXnU3QiJm0nHr3pxMr4chWcP+77m\n"
    "yVyJFV5rXRLOpMhVMp45d5u3hCyayNnHb9OWXys+FhTsrqOdbh30Wnb4CSE2V7I8\n"
    "l3MuZh3VZSDrCPeuuI+bMRRw/sC6WepLrJceseMCgYA2Tm2qbs69owmLLLrN5faF\n"
    "s23oUTP/NnZdv3s08Zn+FesJjYzHUk21DJtcmz2JFDfcUfsrubMO3sWma66h4r9h\n"
    "R5FV8YbD57OdliGgcPQgdeNtilMJQn2/FKD9JORXW/TyQDgHC8kHVQvPsSdRrYfZ\n"
    "hFyifbKvVaNwVreDUmgE/Q==\n"
    "-----END PRIVATE KEY-----\n";

}  // namespace kubehsm::fuzz
